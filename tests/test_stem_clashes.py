"""Two files of one name but for the extension (``a.png`` + ``a.jpg``, ``case.nii`` + ``case.nii.gz``, one image
ID in both HAM10000 parts) are an error naming both files in every loader: labkit never keeps one of them silently.
So are two masks or labels for one image through a name suffix (``Mask/a.png`` + ``Mask/a_Mask.png``,
``labelsTr/a.nii.gz`` + ``labelsTr/a_seg.nii.gz``), while a suffix alone pairs each file with its own image."""

import re

import pytest

from labkit import LabkitInputError
from labkit.data.layouts import find_xray_pairs
from labkit.data.layouts.filename_labels import get_data, list_labelled_files
from labkit.data.layouts.isic2016 import pair_by_isic_id
from labkit.data.layouts.ct_mri import find_lab5_pairs
from labkit.data.layouts.isic2018 import ham10000_images, isic2018_images
from labkit.data.layouts.class_folders import find_lab2_set
from labkit.data.layouts.volume_cases import find_nifti_pairs

ISIC = "ISIC_0000001"
HAM_CSV = "lesion_id,image_id,dx\nHAM_1,ISIC_0000001,nv\nHAM_2,ISIC_0000002,mel\n"
TASK3_CSV = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_0000001,0,1,0,0,0,0,0\n"


def touch(root, *names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not decoded: only listed")


def xray(root):
    touch(root, "Image/a.png", "Image/a.jpg", "Image/b.png", "Mask/a.png", "Mask/b.png")
    return lambda: find_xray_pairs(root), "Image/a.jpg", "Image/a.png"


def xray_masks(root):
    touch(root, "Image/a.png", "Mask/a.png", "Mask/a.bmp")
    return lambda: find_xray_pairs(root), "Mask/a.bmp", "Mask/a.png"


def isic2016(root):
    touch(root, f"img/{ISIC}.jpg", f"img/{ISIC}.png", f"gt/{ISIC}_Segmentation.png")
    return lambda: pair_by_isic_id(root / "img", root / "gt"), f"img/{ISIC}.jpg", f"img/{ISIC}.png"


def isic2018(root):
    touch(root, f"in/{ISIC}.jpg", f"in/{ISIC}.JPEG")
    (root / "gt.csv").write_text(TASK3_CSV)
    return lambda: isic2018_images(root / "in", root / "gt.csv"), f"in/{ISIC}.JPEG", f"in/{ISIC}.jpg"


def ham10000_parts(root):
    touch(root, f"HAM10000_images_part_1/{ISIC}.jpg", f"HAM10000_images_part_2/{ISIC}.jpg",
          "HAM10000_images_part_2/ISIC_0000002.jpg")
    (root / "HAM10000_metadata.csv").write_text(HAM_CSV)
    return lambda: ham10000_images(root), f"HAM10000_images_part_1/{ISIC}.jpg", f"HAM10000_images_part_2/{ISIC}.jpg"


def lab2(root):
    touch(root, "train/AFF/a.png", "train/AFF/a.jpg", "train/NFF/b.png", "validation/AFF/c.png",
          "validation/NFF/d.png")
    return lambda: find_lab2_set(root), "train/AFF/a.jpg", "train/AFF/a.png"


def filename_labels(root):
    touch(root, "train/Mel_1.png", "train/Mel_1.jpg", "train/Nev_1.png")
    return lambda: list_labelled_files(root / "train"), "train/Mel_1.jpg", "train/Mel_1.png"


def filename_labels_course_get_data(root):
    touch(root, "train/Mel_1.png", "train/Mel_1.jpg", "train/Nev_1.png")
    names = ["Mel_1.png", "Nev_1.png", "Mel_1.jpg"]  # as os.listdir gives them: any order (get_data sorts by name)
    return lambda: get_data(root / "train", names, 8, 8), "train/Mel_1.jpg", "train/Mel_1.png"


def nifti(root):
    touch(root, "imagesTr/case.nii", "imagesTr/case.nii.gz", "labelsTr/case.nii.gz")
    return lambda: find_nifti_pairs(root), "imagesTr/case.nii", "imagesTr/case.nii.gz"


def nifti_labels(root):
    touch(root, "imagesTr/case.nii.gz", "labelsTr/case.nii", "labelsTr/case.nii.gz")
    return lambda: find_nifti_pairs(root), "labelsTr/case.nii", "labelsTr/case.nii.gz"


LOADERS = [xray, xray_masks, isic2016, isic2018, ham10000_parts, lab2, filename_labels,
           filename_labels_course_get_data, nifti, nifti_labels]


@pytest.mark.parametrize("layout", LOADERS, ids=[f.__name__ for f in LOADERS])
def test_a_stem_clash_is_an_error_naming_both_files(tmp_path, layout):
    load, first, second = layout(tmp_path)
    with pytest.raises(LabkitInputError) as error:
        load()
    message = str(error.value)
    assert "\n" not in message
    assert re.search(rf"two .*files for .*{re.escape(str(tmp_path / first))} and {re.escape(str(tmp_path / second))}",
                     message), message


# --- two masks or labels for one image through a name suffix --------------------------------------------------------

#: (finder, files, the two files that claim one image): X-ray under its parent folder, the CT layout of Lab 5 (its
#: masks are ``<name>_Mask.png``), NIfTI labels with and without a label suffix.
SUFFIX_CLASHES = [
    (find_xray_pairs, ["X_ray/Image/a.png", "X_ray/Image/b.png", "X_ray/Mask/a.png", "X_ray/Mask/a_Mask.png",
                       "X_ray/Mask/b.png"], "a.png", "a_Mask.png"),
    (find_lab5_pairs, ["CT/Image/Im1_1.png", "CT/Mask/Im1_1.png", "CT/Mask/Im1_1_Mask.png"],
     "Im1_1.png", "Im1_1_Mask.png"),
    (find_lab5_pairs, ["CT/Image/Im1_1.png", "CT/Mask/Im1_1_mask.png", "CT/Mask/Im1_1_Mask.png"],
     "Im1_1_Mask.png", "Im1_1_mask.png"),
    (find_nifti_pairs, ["imagesTr/a.nii.gz", "labelsTr/a.nii.gz", "labelsTr/a_seg.nii.gz"],
     "labelsTr/a.nii.gz", "labelsTr/a_seg.nii.gz"),
    (find_nifti_pairs, ["imagesTr/a.nii.gz", "imagesTr/b.nii.gz", "labelsTr/a.nii.gz", "labelsTr/a_label.nii.gz",
                        "labelsTr/b.nii.gz"], "labelsTr/a.nii.gz", "labelsTr/a_label.nii.gz"),
    (find_nifti_pairs, ["imagesTr/a.nii.gz", "labelsTr/a_label.nii", "labelsTr/a_seg.nii.gz"],
     "labelsTr/a_label.nii", "labelsTr/a_seg.nii.gz"),
]


@pytest.mark.parametrize("find, files, one, other", SUFFIX_CLASHES)
def test_two_masks_or_labels_for_one_image_by_suffix_are_an_error_naming_both(tmp_path, find, files, one, other):
    touch(tmp_path, *files)
    with pytest.raises(LabkitInputError) as error:
        find(tmp_path)
    message = str(error.value)
    assert "\n" not in message and re.search(r"two (masks|labels) for image '(a|Im1_1)'", message), message
    assert one in message and other in message, message


#: (finder, files, the expected pairs as (image, mask) file names): names chosen so that pairing by listing order
#: would be wrong (sorted, ``a.png`` < ``a1.png`` but ``a1_Mask.png`` < ``a_Mask.png``).
SUFFIX_PAIRS = [
    (find_xray_pairs, ["X_ray/Image/a.png", "X_ray/Image/a1.png", "X_ray/Mask/a_Mask.png", "X_ray/Mask/a1_Mask.png"],
     [("a.png", "a_Mask.png"), ("a1.png", "a1_Mask.png")]),
    (find_lab5_pairs, ["CT/Image/Im1_1.png", "CT/Image/Im1_10.png", "CT/Mask/Im1_1_Mask.png", "CT/Mask/Im1_10.png"],
     [("Im1_1.png", "Im1_1_Mask.png"), ("Im1_10.png", "Im1_10.png")]),
    (find_nifti_pairs, ["imagesTr/a.nii.gz", "imagesTr/a1.nii.gz", "labelsTr/a_seg.nii.gz", "labelsTr/a1_label.nii"],
     [("a.nii.gz", "a_seg.nii.gz"), ("a1.nii.gz", "a1_label.nii")]),
    # A file named exactly as its image is that image's, even when the name ends in a suffix.
    (find_xray_pairs, ["Image/lung_seg.png", "Mask/lung_seg.png"], [("lung_seg.png", "lung_seg.png")]),
    (find_nifti_pairs, ["imagesTr/a.nii.gz", "imagesTr/a_seg.nii.gz", "labelsTr/a.nii.gz", "labelsTr/a_seg.nii.gz"],
     [("a.nii.gz", "a.nii.gz"), ("a_seg.nii.gz", "a_seg.nii.gz")]),
]


@pytest.mark.parametrize("find, files, expected", SUFFIX_PAIRS)
def test_each_mask_or_label_pairs_with_its_own_image(tmp_path, find, files, expected):
    touch(tmp_path, *files)
    pairs = [pair[-2:] for pair in find(tmp_path)]  # NIfTI pairs start with the case name
    assert [(image.name, mask.name) for image, mask in pairs] == expected
