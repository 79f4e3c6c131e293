from kdumpctl_py.cli import program

raise SystemExit(program())
