"""Several sources read as one dataset (VOC2007 + VOC2012 devkit roots, COCO train2017 +
val2017 jsons), without merging files by hand.

Each source is read by its format's reader into the one collector, so the same file under two
sources is the duplicate it already is and every total closes over all of them. A source sees
the collector through a SourceView: its root, its ids moved past the earlier sources' (source k's
image and annotation ids + k x ID_STRIDE, so ids that repeat across sources stay apart; the
offsets are in ingest's summary.json), the classes an earlier source declared accepted again when
they are the same, and, where the source says, one predefined split for all its images.
"""
from __future__ import annotations

from typing import Callable

from .collector import Collector, IngestError

ID_STRIDE = 10**12


class SourceView:
    """The collector as one source's reader sees it (everything else passes through)."""

    def __init__(self, collector: Collector, name: str, offset: int, split: str | None):
        vars(self).update(_collector=collector, _name=name, _offset=offset, _split=split, _declared=set())

    def __getattr__(self, attribute):
        return getattr(self._collector, attribute)

    def __setattr__(self, attribute, value):  # a reader setting its root or linked folders
        setattr(self._collector, attribute, value)

    def _moved(self, value):
        return value + self._offset if isinstance(value, int) and not isinstance(value, bool) else value

    def add_image(self, image_id, file_name, source_file, declared_size=None, group=None, split=None):
        return self._collector.add_image(self._moved(image_id), file_name, source_file, declared_size, group, self._split or split)

    def add_annotation(self, image_id, *args, ann_id=None, **kwargs):
        return self._collector.add_annotation(self._moved(image_id), *args, ann_id=self._moved(ann_id), **kwargs)

    def add_category(self, category_id, name, supercategory="", source=""):
        """A class an earlier source declared with the same id and name is the same class; any
        other repeat is the collector's error (naming both)."""
        known = self._collector.categories.get(category_id)
        fresh = category_id not in self._declared
        self._declared.add(category_id)
        if fresh and known is not None and known["name"] == str(name):
            return
        if fresh and known is not None:
            raise IngestError(f"source {self._name}: {source}: category id {category_id} is {name!r} here and "
                              f"{known['name']!r} in an earlier source; one id must be one class in every source")
        self._collector.add_category(category_id, name, supercategory, source)


def read(collector: Collector, sources: dict[str, dict], read_one: Callable[[Collector, dict], None]) -> dict:
    """Read every source in order with `read_one(view, source)`; returns per source its id offset
    and how many image records it held and ingest kept (for the summary)."""
    record = {}
    for index, (name, source) in enumerate(sources.items()):
        before = (collector.counts["images_input"], len(collector.images))
        collector.linked_roots = []  # a YOLO source names its own (read_one sets the source's root)
        read_one(SourceView(collector, name, index * ID_STRIDE, source.get("split")), source)
        record[name] = {"kind": source["kind"], "id_offset": index * ID_STRIDE, "split": source.get("split"),
                        "images_input": collector.counts["images_input"] - before[0], "images_ingested": len(collector.images) - before[1]}
    return record
