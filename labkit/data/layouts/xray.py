"""Course X-ray / CT layout (Lab 3–4).

``<root>/Image/<name>.png|jpg`` with ``<root>/Mask/<name>.png`` (or ``<name>_Mask.png``, as the CT set);
`<root>` may also be the folder that holds ``X_ray/``.
"""

from pathlib import Path

from labkit.data.layouts import pair_by_name, subfolders
from labkit.errors import require


def find_xray_pairs(data_dir, image_dir="Image", mask_dir="Mask"):
    """Image/mask pairs of the course X-ray (or CT) layout under `data_dir`.

    `data_dir` is either the folder holding `image_dir` and `mask_dir`, or its parent holding ``X_ray/``.
    """
    root = Path(data_dir)
    require(root.is_dir(), f"data folder not found: {root}")
    if not (root / image_dir).is_dir() and (root / "X_ray" / image_dir).is_dir():
        root = root / "X_ray"
    found = subfolders(root)
    require(
        (root / image_dir).is_dir() and (root / mask_dir).is_dir(),
        f"{root} does not have the course X-ray layout: expected folders {image_dir}/ and {mask_dir}/, "
        f"found {', '.join(found) + '/' if found else 'no folders'}",
    )
    return pair_by_name(root / image_dir, root / mask_dir)
