"""The command line's side of the option table: each option's flag added to a parser, and
the parsed values converted and checked (by :func:`~mxnet_recpack.options.validate`)."""

from ..options import OPTIONS, validate

__all__ = ["add_flags", "from_args"]


def add_flags(parser, names):
    """Add the command-line flags of ``names`` to an argparse parser or group."""
    for name in names:
        option = OPTIONS[name]
        kwargs = dict(option.cli)  # its "help", if any, is the flag's (a --no-X flag's)
        kwargs.setdefault("dest", name)
        kwargs.setdefault("help", option.help)
        if kwargs.get("action") not in ("store_true", "store_false"):
            kwargs.setdefault("default", option.default)  # from_cli maps it to itself
        parser.add_argument(option.flag, **kwargs)


def from_args(args, names):
    """The option values of parsed command-line ``args`` (converted and checked)."""
    out = {}
    for name in names:
        option = OPTIONS[name]
        value = getattr(args, name)
        if option.from_cli is not None:
            value = option.from_cli(value)
        out[name] = validate(name, value, option.flag)
    return out
