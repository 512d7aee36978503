"""Benchmarks: ``python -m ml bench NAME``. Each module here that defines ``NAME``,
``add_arguments(parser)`` and ``run(args) -> int`` becomes a sub-command. Benchmarks print a
table and write JSON; speed and memory targets live here, not in timed unit tests."""

# the synthetic shop sizes a benchmark accepts (ml.shop.generate.SIZES, without importing it)
SHOP_SIZES = ("tiny", "small", "default", "large")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def policy_names(text: str) -> list[str]:
    """An argparse type: comma-separated names of explore/exploit policies, each one known."""
    import argparse

    from ml.explore.policies import POLICIES

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown policy {', '.join(unknown) or text!r}: choose from {sorted(POLICIES)}"
        )
    return names
