"""Find the files of a dataset layout and pair them by name, never by directory-listing order.

`common` holds what every layout shares (listing image files, pairing by name, checking that files decode; its
names are re-exported here); one submodule per layout family finds its files (see ``data/README.md``):

* `xray`: course X-ray / CT (Lab 3–4).
* `class_folders`: one folder per class, e.g. the course Lab 2 sets (Bone AFF/NFF, Skin Mel/Nevi).
* `isic2016`: ISIC 2016 Part 1, official and Kaggle copies.
* `isic2018`: ISIC 2018 Task 3 CSVs and HAM10000 metadata.
* `volume_cases`: LA 2018 (UA-MT h5) and NIfTI image/label pairs.
* `stock`: course Lab 6 Task 1, a daily series in two CSV files (newest row first).
* `tractography`: course Lab 6 Task 2, TrackVis bundles ``<subject>/<bundle>.trk`` (read with nibabel).
"""

from labkit.data.layouts.common import (MASK_SUFFIXES, by_key, check_readable, forget_skipped, list_image_files,
                                        match_keys, name_some, note_skipped, pair_by_name, skipped_files, subfolders)
from labkit.data.layouts.xray import find_xray_pairs

__all__ = ["MASK_SUFFIXES", "by_key", "check_readable", "find_xray_pairs", "forget_skipped", "list_image_files",
           "match_keys", "name_some", "note_skipped", "pair_by_name", "skipped_files", "subfolders"]
