"""kdumpctl-py's configuration file, /etc/kdumpctl-py/kdump.conf.

`settings` holds the frozen Config and the one table of directives, `parse`
reads files into it, `render` shows it and checks it against the machine, and
`man` writes kdumpctl-py.conf(5) from the same table.
"""

from kdumpctl_py.config.model import Config, Target
from kdumpctl_py.config.parse import ConfigError, parse_text, read_config
from kdumpctl_py.config.settings import DEFAULT_PATH, ENV_PATH, SETTINGS

__all__ = ["DEFAULT_PATH", "ENV_PATH", "SETTINGS", "Config", "ConfigError", "Target",
           "parse_text", "read_config"]
