from kdumpctl_py.cli import main

raise SystemExit(main())
