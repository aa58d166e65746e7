"""Embedded synthetic datasets, written in the real layouts so the demos run through the real loaders.

Every set is deterministic (same arguments → same bytes), written to a temporary folder and renamed into place
when complete, and reused on the next call. The default home is ``data/embedded/`` in a source checkout
(git-ignored), else ``~/.cache/labkit/embedded``; ``LABKIT_DATA_HOME`` overrides both.
One module per set: `xray` (Lab 4 chest X-rays), `lab1` (Lab 1 Skin, Bone and nine-class X_ray, flat folders),
`ct_mri` (Lab 5 CT lungs and MRI brain tumours), `stock` (Lab 6 daily series) and `tracts` (Lab 6 TrackVis
bundles).
"""

from labkit.data.synthetic.common import default_data_home, write_once
from labkit.data.synthetic.lab1 import lab1_dataset, organ_radiograph
from labkit.data.synthetic.xray import chest_xray, xray_dataset
from labkit.data.synthetic.ct_mri import ct_dataset, mri_dataset
from labkit.data.synthetic.stock import stock_dataset
from labkit.data.synthetic.tracts import tract_dataset

__all__ = ["chest_xray", "ct_dataset", "default_data_home", "lab1_dataset", "mri_dataset", "organ_radiograph",
           "stock_dataset", "tract_dataset", "write_once", "xray_dataset"]
