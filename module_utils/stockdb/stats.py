"""The small statistics the reports share: nearest-rank percentiles and min / median / max of repeated runs."""

import math
import statistics


def percentile(values, share):
    """Nearest-rank percentile (share 0..1) of the numbers, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(share * len(ordered)))) - 1]


def spread(values, digits=3):
    """dict(min, median, max, missing) of the values (None = not measured); the figures None when none was."""
    present = [v for v in values if v is not None]
    figures = dict(min=None, median=None, max=None)
    if present:
        figures = dict(min=round(min(present), digits), median=round(statistics.median(present), digits),
                       max=round(max(present), digits))
    return dict(figures, missing=len(values) - len(present))
