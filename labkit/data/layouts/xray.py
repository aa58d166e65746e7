"""Course X-ray / CT layout (Lab 3–4).

``<root>/Image/<name>.png|jpg`` with ``<root>/Mask/<name>.png`` (or ``<name>_Mask.png``, as the CT set);
`<root>` may also be the folder that holds ``X_ray/``.
"""

from pathlib import Path

from labkit.data.layouts.common import pair_by_name, subfolders
from labkit.errors import require


def find_xray_pairs(data_dir, image_dir="Image", mask_dir="Mask", folder="X_ray", layout="X-ray"):
    """Image/mask pairs of the course X-ray (or CT, MRI) layout under `data_dir`.

    `data_dir` is either the folder holding `image_dir` and `mask_dir`, or its parent holding `folder` (``X_ray``;
    Lab 5: ``CT`` or ``MRI``). `layout` names the layout in error messages.
    """
    root = Path(data_dir)
    require(root.is_dir(), f"data folder not found: {root}")
    if not (root / image_dir).is_dir() and (root / folder / image_dir).is_dir():
        root = root / folder
    found = subfolders(root)
    require(
        (root / image_dir).is_dir() and (root / mask_dir).is_dir(),
        f"{root} does not have the course {layout} layout: expected folders {image_dir}/ and {mask_dir}/, "
        f"found {', '.join(found) + '/' if found else 'no folders'}",
    )
    return pair_by_name(root / image_dir, root / mask_dir)
