"""Episodes from the real worlds: the file format, collection folders, collection, training windows."""

from worldsim.data.collection import Collection
from worldsim.data.episode import Episode

__all__ = ["Collection", "Episode"]
