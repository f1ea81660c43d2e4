"""Counters the host reports in the pipeline's summary. Outside weir they are kept in
`counters`, so a unit test can read them."""

from weir._host import wit_metrics

counters: dict[str, int] = {}


def counter_add(name: str, value: int = 1) -> None:
    if wit_metrics is None:
        counters[name] = counters.get(name, 0) + value
    else:
        wit_metrics.counter_add(name, value)


def gauge_set(name: str, value: int) -> None:
    """A value that goes up and down (a lag): the last one set is reported."""
    if wit_metrics is None:
        counters[name] = value
    else:
        wit_metrics.gauge_set(name, value)
