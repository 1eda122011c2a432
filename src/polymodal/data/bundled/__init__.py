"""Bundled benchmark datasets, made reproducibly on this machine from packaged sources."""

from polymodal.data.bundled.registry import (
    DATASETS,
    DatasetSpec,
    DatasetUnavailable,
    data_home,
    get_spec,
    list_datasets,
    make_dataset,
)

__all__ = ["DATASETS", "DatasetSpec", "DatasetUnavailable", "data_home", "get_spec",
           "list_datasets", "make_dataset"]
