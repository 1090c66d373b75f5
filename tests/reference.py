"""The reference implementation lives in the package (`featureline.testing.reference`) so that
the offline contract suite every engine passes can use it; tests import it from here too."""

from featureline.testing.reference import RefBatch, RefView, point_in_time_join, winner

__all__ = ["RefBatch", "RefView", "point_in_time_join", "winner"]
