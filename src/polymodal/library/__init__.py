"""Ask a library: index a collection of images, sounds and texts with a pretrained
polymodal model, then search it and ask it questions (LanceDB by default, Milvus past
one machine)."""

from polymodal.library.answer import compose_answer
from polymodal.library.folders import check_name, library_home, list_libraries
from polymodal.library.library import Library, LibraryBusy
from polymodal.library.results import Answer, Hit, IndexReport
from polymodal.library.store import LanceStore, MilvusStore, VectorStore

__all__ = ["Answer", "Hit", "IndexReport", "LanceStore", "Library", "LibraryBusy",
           "MilvusStore", "VectorStore", "check_name", "compose_answer", "library_home",
           "list_libraries"]
