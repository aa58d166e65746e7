"""Every course name that takes folders or files, called the ways course code calls it (issue 29).

The handout's notebooks build ``image_dir = os.path.join(data_dir, 'Image/')`` and pass it next to `data_dir`
(the handout's loader ignored `data_dir`); labkit's docs and much student code pass subfolder names. Both must work,
with trailing separators, relative or absolute, ``str`` or `pathlib.Path`, from any working directory. Each case
checks the values that come back (which folder was read, which mask goes with which image, which label with which
image), not only that the call ran; a name found in neither convention is one `LabkitInputError` line naming it.

The files are tiny PNGs in the course layouts, written under ``tmp_path/Data``; ``tmp_path`` is also the home folder
(``HOME``), so ``~/Data/CT`` is the same folder:

* ``CT/Image/<name>.png`` + ``CT/Mask/<name>_Mask.png`` (Labs 3–5), written out of name order; decoy ``Image/`` and
  ``Mask/`` folders in the working directory (and in a working directory inside the data folder) catch a subfolder
  name resolved against the wrong folder, and a decoy doubled ``CT/Data/CT/Image/`` catches a path that holds
  `data_dir` joined to it again;
* ``Lab1/Skin/{train,test}/{Mel,Nev}_<k>.png`` (Lab 1: class in the file name), with a ``Thumbs.db`` and a
  ``.DS_Store`` as ``os.listdir`` lists them;
* ``Lab2/Bone/{train,validation}/{AFF,NFF}/`` (Lab 2: class = folder).
"""

import glob
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from labkit import (
    LabkitInputError,
    gen_labels,
    gen_labels_multiclass,
    get_data,
    get_data_multiclass,
    get_length,
    get_train_test_arrays,
    get_train_test_arrays_multiclass,
    load_data,
    load_image,
    load_mask,
    load_partial_data,
    pretrain_data_label,
)
from labkit.data.paths import candidates, find_path

SIZE = 16
CT_NAMES = ["Im10_2", "Im1_3", "Im2_1", "Im3_4"]  # sorted by name: the order load_data returns
CT_WRITE_ORDER = ["Im3_4", "Im1_3", "Im10_2", "Im2_1"]
SKIN = {"train": {"Mel_1": 40, "Mel_2": 50, "Mel_3": 60, "Nev_1": 190, "Nev_2": 200},
        "test": {"Mel_4": 70, "Nev_3": 210, "Nev_4": 220}}
BONE = {"train": {"AFF": [30, 45, 60], "NFF": [150, 165]}, "validation": {"AFF": [75], "NFF": [180, 195]}}


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.asarray(array, np.uint8))


def ct_case(index):
    """Image `index` of the CT set: a flat background of its own grey level with a bright square where its mask is."""
    background = np.full((SIZE, SIZE), 20 * (index + 1))
    mask = np.zeros((SIZE, SIZE))
    mask[index:index + 5, 2 * index:2 * index + 4] = 255
    return np.where(mask > 0, 250, background), mask


@pytest.fixture
def course_tree(tmp_path, monkeypatch):
    """Writes the course layouts under ``tmp_path/Data`` and returns ``tmp_path`` (the working directory)."""
    for name in CT_WRITE_ORDER:
        image, mask = ct_case(CT_NAMES.index(name))
        write_png(tmp_path / "Data/CT/Image" / f"{name}.png", image)
        write_png(tmp_path / "Data/CT/Mask" / f"{name}_Mask.png", mask)
    for decoys in (tmp_path, tmp_path / "Data/CT/notebooks", tmp_path / "Data/CT/Data/CT"):
        write_png(decoys / "Image/decoy.png", np.full((SIZE, SIZE), 255))  # a subfolder name must not land here,
        write_png(decoys / "Mask/decoy.png", np.zeros((SIZE, SIZE)))  # nor a path that holds data_dir, doubled
    for split, files in SKIN.items():
        for name, value in files.items():
            write_png(tmp_path / "Data/Lab1/Skin" / split / f"{name}.png", np.full((SIZE, SIZE), value))
        (tmp_path / "Data/Lab1/Skin" / split / "Thumbs.db").write_bytes(b"not an image")
        (tmp_path / "Data/Lab1/Skin" / split / ".DS_Store").write_bytes(b"")
    for split, classes in BONE.items():
        for label, values in classes.items():
            for k, value in enumerate(values):
                write_png(tmp_path / "Data/Lab2/Bone" / split / label / f"{label}_{k}.png", np.full((SIZE, SIZE), value))
    (tmp_path / "Data/Lab2/Bone/train/AFF/Thumbs.db").write_bytes(b"not an image")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # ~ is tmp_path (os.path.expanduser reads HOME)
    return tmp_path


def expected_ct(indices):
    images, masks = zip(*(ct_case(i) for i in indices))
    return np.stack(images)[..., None] / 255.0, (np.stack(masks)[..., None] > 0).astype(np.float32)


# --- Labs 3–5: load_data and load_partial_data ----------------------------------------------------------------------

# (case, working directory under tmp_path, calling pattern: root (absolute tmp_path) -> (data_dir, image_dir, mask_dir))
SEGMENTATION_CALLS = [
    ("handout: os.path.join(data_dir, 'Image/')", ".",
     lambda root: ("Data/CT", os.path.join("Data/CT", "Image/"), os.path.join("Data/CT", "Mask/"))),
    ("subfolder names", ".", lambda root: ("Data/CT", "Image", "Mask")),
    ("trailing separators everywhere", ".", lambda root: ("Data/CT/", "Image/", "Mask/")),
    ("./ spelling of the data folder", ".", lambda root: ("./Data/CT", "Data/CT/Image", "./Data/CT/Mask/")),
    ("absolute paths that hold data_dir", ".",
     lambda root: (str(root / "Data/CT"), os.path.join(root, "Data/CT", "Image/"), os.path.join(root, "Data/CT", "Mask/"))),
    ("absolute data_dir, subfolder names", "notebooks", lambda root: (str(root / "Data/CT"), "Image", "Mask")),
    ("absolute data_dir, folders relative to the working directory", ".",
     lambda root: (str(root / "Data/CT"), "Data/CT/Image/", "Data/CT/Mask/")),
    ("pathlib paths that hold data_dir", ".",
     lambda root: (Path("Data/CT"), Path("Data/CT") / "Image", Path("Data/CT") / "Mask")),
    ("pathlib data_dir, str names", ".", lambda root: (Path("Data/CT"), "Image", Path("Mask"))),
    ("another working directory: ../ paths that hold data_dir", "notebooks",
     lambda root: ("../Data/CT", os.path.join("../Data/CT", "Image/"), os.path.join("../Data/CT", "Mask/"))),
    ("another working directory: ../ data_dir, names", "notebooks", lambda root: ("../Data/CT/", "Image", "Mask")),
    ("inside the data folder", "Data/CT", lambda root: (".", "Image/", "Mask/")),
    ("no data_dir (the handout ignored it)", ".", lambda root: (None, "Data/CT/Image/", "Data/CT/Mask/")),
    ("stale data_dir, folders from the working directory (the handout ignored data_dir)", ".",
     lambda root: ("/DL_course_data/Lab3/CT", "Data/CT/Image/", "Data/CT/Mask/")),
    ("empty data_dir", ".", lambda root: ("", "Data/CT/Image", "Data/CT/Mask")),
    ("~ data_dir, handout's os.path.join", "notebooks",
     lambda root: ("~/Data/CT", os.path.join("~/Data/CT", "Image/"), os.path.join("~/Data/CT", "Mask/"))),
    ("~ data_dir, subfolder names", "notebooks", lambda root: ("~/Data/CT/", "Image/", "Mask")),
    ("pathlib ~ data_dir", "notebooks", lambda root: (Path("~/Data/CT"), Path("~/Data/CT") / "Image", "Mask")),
    ("absolute data_dir, os.path.join of its relative spelling", ".",
     lambda root: (str(root / "Data/CT"), os.path.join("Data/CT", "Image/"), os.path.join("./Data/CT", "Mask/"))),
    ("relative data_dir, absolute paths that hold it", "notebooks",
     lambda root: ("../Data/CT", root / "Data/CT/Image", str(root / "Data/CT/Mask") + os.sep)),
    ("working directory inside the data folder, absolute data_dir, names", "Data/CT/notebooks",
     lambda root: (str(root / "Data/CT"), "Image", "Mask/")),
    ("working directory inside the data folder, ../ data_dir, names", "Data/CT/notebooks",
     lambda root: ("..", "Image/", Path("Mask"))),
]

LOADERS = [
    ("load_data", lambda d, i, m: load_data(d, i, m, SIZE, SIZE), range(4)),
    ("load_partial_data", lambda d, i, m: load_partial_data(d, i, m, SIZE, SIZE, number_of_images=2, partition=1),
     range(2, 4)),
]


@pytest.mark.parametrize("loader, load, indices", LOADERS, ids=[row[0] for row in LOADERS])
@pytest.mark.parametrize("case, cwd, call", SEGMENTATION_CALLS, ids=[row[0] for row in SEGMENTATION_CALLS])
def test_segmentation_loaders_take_both_folder_conventions(course_tree, monkeypatch, case, cwd, call, loader, load,
                                                           indices):
    monkeypatch.chdir(course_tree / cwd)
    images, masks = load(*call(course_tree))
    want_images, want_masks = expected_ct(indices)
    np.testing.assert_allclose(images, want_images, atol=1e-6)  # the CT images (not the decoy), in name order
    np.testing.assert_array_equal(masks, want_masks)  # each with its own mask


# (case, working directory, call (root -> args), text the one-line message must hold (formatted with root))
MISSING_FOLDERS = [
    ("subfolder name", ".", lambda root: load_data("Data/CT", "Imag", "Mask", SIZE, SIZE), "Data/CT/Imag"),
    ("path that holds data_dir", ".",
     lambda root: load_data("Data/CT", os.path.join("Data/CT", "Masks/"), "Mask", SIZE, SIZE), "Data/CT/Masks"),
    ("absolute", "notebooks",
     lambda root: load_partial_data(root / "Data/CT", root / "Data/CT/Image", root / "nowhere/Mask", SIZE, SIZE),
     "{root}/nowhere/Mask"),
    ("missing data folder", "notebooks", lambda root: load_data("Data/MRI", "Image", "Mask", SIZE, SIZE),
     "data folder Data/MRI does not exist"),
    ("class folder of get_length", ".", lambda root: get_length("Data/Lab2/Bone/train", "AFX"),
     "Data/Lab2/Bone/train/AFX"),
    ("file of get_data", ".",
     lambda root: get_data("Data/Lab1/Skin/train", ["Mel_1.png", "Mel_9.png"], SIZE, SIZE), "Mel_9.png"),
    ("~ data folder", "notebooks", lambda root: load_data("~/Data/MRI", "Image", "Mask", SIZE, SIZE),
     "data folder ~/Data/MRI does not exist"),
    ("~ path that holds data_dir", ".",
     lambda root: load_partial_data("~/Data/CT", "~/Data/CT/Image/", "~/Data/CT/Masks/", SIZE, SIZE),
     "'~/Data/CT/Masks/' ({root}/Data/CT/Masks)"),
    ("pathlib class folder of get_length", "notebooks",
     lambda root: get_length(Path("../Data/Lab2/Bone/train"), Path("NFX")), "'NFX'"),
    ("file of load_image, as written", "notebooks",
     lambda root: load_image("~/Data/CT/Image/Im9_9.png", SIZE, SIZE), "~/Data/CT/Image/Im9_9.png"),
    ("file of load_mask, as written", "notebooks",
     lambda root: load_mask(Path("../Data/CT/Mask/Im9_9_Mask.png"), SIZE, SIZE), "../Data/CT/Mask/Im9_9_Mask.png"),
    ("split folder of pretrain_data_label", ".",
     lambda root: pretrain_data_label("Data/Lab2/Bone/trian", "Data/Lab2/Bone/validation", 32, 32, 2,
                                      weights="none", cache_dir=root / "cache"), "Data/Lab2/Bone/trian"),
]


@pytest.mark.parametrize("case, cwd, call, named", MISSING_FOLDERS, ids=[row[0] for row in MISSING_FOLDERS])
def test_a_folder_in_neither_convention_is_one_line_naming_it(course_tree, monkeypatch, case, cwd, call, named):
    monkeypatch.chdir(course_tree / cwd)
    with pytest.raises(LabkitInputError) as error:
        call(course_tree)
    message = str(error.value)
    assert named.format(root=course_tree) in message and "\n" not in message, message
    assert message.count("not found") == 1, message
    assert "not found" in message or "does not exist" in message, message


def test_a_doubled_path_names_both_places_it_looked(course_tree):
    """The issue's failure: a relative path that holds data_dir, where the folder is missing, names both readings."""
    with pytest.raises(LabkitInputError, match=r"folder not found: 'Data/CT/Imagez/' \(looked for Data/CT/Imagez and "
                                               r"Data/CT/Data/CT/Imagez from "):
        load_data("Data/CT", "Data/CT/Imagez/", "Data/CT/Mask/", SIZE, SIZE)


@pytest.mark.parametrize("base, name, expected", [
    ("Data/CT", "Image/", ["Data/CT/Image", "Image"]),  # a name under the data folder first
    ("Data/CT", "Data/CT/Image/", ["Data/CT/Image", "Data/CT/Data/CT/Image"]),  # already holds it: as it stands first
    ("./Data/CT/", "Data/CT/Image", ["Data/CT/Image", "Data/CT/Data/CT/Image"]),  # compared after normalisation
    ("../D", "../D/Image", ["../D/Image"]),  # ../D/../D/Image is the same folder
    ("Data", "Data", ["Data/Data", "Data"]),  # only a deeper path counts as holding the data folder
    ("/abs/CT", "Image", ["/abs/CT/Image", "Image"]),
    ("Data/CT", "/abs/CT/Image/", ["/abs/CT/Image"]),  # absolute: as it stands
    (None, "Data/CT/Image/", ["Data/CT/Image"]),
    ("", "Image", ["Image"]),
    (".", "Image", ["Image"]),
])
def test_the_order_in_which_a_name_is_looked_for(base, name, expected):
    assert [str(p) for p in candidates(base, name)] == expected


# (base, name, expected order) with {root} the working directory's parent, the working directory {root}/lab5 and
# the home folder {root}/home: a relative name that reaches an absolute base is taken as it stands, as is one that
# spells the base; from inside the base, a bare name is the base's subfolder first
CWD_DEPENDENT_ORDERS = [
    ("{root}/lab5/Data/CT", "Data/CT/Image/", ["Data/CT/Image", "{root}/lab5/Data/CT/Data/CT/Image"]),
    ("{root}/lab5/Data/CT", "Image", ["{root}/lab5/Data/CT/Image", "Image"]),
    ("{root}/lab5", "Image", ["{root}/lab5/Image"]),  # the working directory is the base: one place
    ("{root}", "Image", ["{root}/Image", "Image"]),  # inside the base: its subfolder first
    ("..", "Image", ["../Image", "Image"]),
    ("~/Data/CT", "Image/", ["{root}/home/Data/CT/Image", "Image"]),
    ("~/Data/CT", "~/Data/CT/Image/", ["{root}/home/Data/CT/Image"]),
    ("Data/CT", "~/Image", ["{root}/home/Image"]),
    (None, "~", ["{root}/home"]),
]


@pytest.mark.parametrize("base, name, expected", CWD_DEPENDENT_ORDERS)
def test_the_order_depends_on_where_the_working_directory_is(tmp_path, monkeypatch, base, name, expected):
    (tmp_path / "lab5").mkdir()
    monkeypatch.chdir(tmp_path / "lab5")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    base = base.format(root=tmp_path) if base else base
    assert [str(p) for p in candidates(base, name)] == [e.format(root=tmp_path) for e in expected]


@pytest.mark.parametrize("data_dir, image_dir, meant", [
    ("Data/CT", "Image", "Data/CT/Image"),  # not ./Image
    ("Data/CT", "Image/", "Data/CT/Image"),
    ("Data/CT", os.path.join("Data/CT", "Image/"), "Data/CT/Image"),  # not Data/CT/Data/CT/Image
    ("./Data/CT/", "Data/CT/Image", "Data/CT/Image"),
    ("{root}/Data/CT", "Data/CT/Image/", "Data/CT/Image"),  # not {root}/Data/CT/Data/CT/Image
    ("{root}/Data/CT", "Image", "{root}/Data/CT/Image"),
    ("Data/CT/Data/CT", "Image", "Data/CT/Data/CT/Image"),  # the doubled folder when course code names it
])
def test_a_name_that_exists_in_two_places_is_the_one_course_code_meant(course_tree, data_dir, image_dir, meant):
    """Both readings exist and hold different images: the one picked is named by the rule in labkit.data.paths."""
    data_dir = data_dir.format(root=course_tree)
    readings = {Path(image_dir).resolve(), (Path(data_dir) / image_dir).resolve()}
    assert len(readings) == 2 and all(path.is_dir() for path in readings)  # a real choice between two folders
    found = find_path(data_dir, image_dir)
    assert found.resolve() == Path(meant.format(root=course_tree)).resolve()


def test_pairing_is_by_name_whatever_order_the_folders_list_in(course_tree, monkeypatch):
    """Images listed in reverse name order, masks in name order: each image still gets its own mask."""
    listdir = os.listdir

    def listed(folder="."):  # what os.listdir (and so Path.iterdir) gives
        return sorted(listdir(folder), reverse=os.path.basename(os.path.normpath(folder)) == "Image")

    monkeypatch.setattr(os, "listdir", listed)
    assert [p.name for p in Path("Data/CT/Image").iterdir()] == [f"{n}.png" for n in CT_NAMES[::-1]]
    images, masks = load_data("Data/CT", "Image", "Mask", SIZE, SIZE)
    want_images, want_masks = expected_ct(range(4))
    np.testing.assert_allclose(images, want_images, atol=1e-6)
    np.testing.assert_array_equal(masks, want_masks)
    images, masks = load_partial_data("Data/CT", "Image/", "Mask/", SIZE, SIZE, number_of_images=3)
    np.testing.assert_array_equal(masks, want_masks[:3])
    np.testing.assert_allclose(images, want_images[:3], atol=1e-6)


# --- Lab 1–3: flat folders, class in the file name ------------------------------------------------------------------

# (case, working directory, folder of each split (root, split) -> path, list of the split's files (folder) -> list)
FLAT_CALLS = [
    ("handout: folder/ and os.listdir", ".", lambda root, s: f"Data/Lab1/Skin/{s}/", os.listdir),
    ("no trailing separator", ".", lambda root, s: f"Data/Lab1/Skin/{s}", os.listdir),
    ("pathlib folder, os.listdir", ".", lambda root, s: Path("Data/Lab1/Skin") / s, os.listdir),
    ("absolute folder, os.listdir", "notebooks", lambda root, s: str(root / "Data/Lab1/Skin" / s), os.listdir),
    ("glob: file paths that hold the folder", ".", lambda root, s: f"Data/Lab1/Skin/{s}",
     lambda folder: glob.glob(os.path.join(folder, "*"))),
    ("Path.iterdir: pathlib file paths", ".", lambda root, s: Path("Data/Lab1/Skin") / s,
     lambda folder: list(Path(folder).iterdir())),
    ("absolute file paths", ".", lambda root, s: f"Data/Lab1/Skin/{s}",
     lambda folder: [os.path.abspath(os.path.join(folder, n)) for n in os.listdir(folder)]),
    ("absolute folder, file paths from the working directory", ".", lambda root, s: str(root / "Data/Lab1/Skin" / s),
     lambda folder: glob.glob(f"Data/Lab1/Skin/{Path(folder).name}/*")),
    ("another working directory: ../", "notebooks", lambda root, s: f"../Data/Lab1/Skin/{s}/", os.listdir),
    ("./ file paths", "Data/Lab1/Skin/train", lambda root, s: "." if s == "train" else "../test",
     lambda folder: [os.path.join(folder, n) for n in os.listdir(folder)]),
    ("os.scandir entries", ".", lambda root, s: f"Data/Lab1/Skin/{s}/", lambda folder: list(os.scandir(folder))),
    ("~ folder, os.listdir of its expansion", "notebooks", lambda root, s: f"~/Data/Lab1/Skin/{s}/",
     lambda folder: os.listdir(os.path.expanduser(folder))),
    ("~ folder, ~ file paths", "notebooks", lambda root, s: Path("~/Data/Lab1/Skin") / s,
     lambda folder: [os.path.join(folder, n) for n in os.listdir(os.path.expanduser(folder))]),
]


def check_skin(images, labels, split):
    """Every image of `split` (the right folder: the values differ between splits) with the label of its name."""
    values = np.rint(images[..., 0] * 255)
    assert images.shape == (len(SKIN[split]), SIZE, SIZE, 1)
    assert (values == values[:, :1, :1]).all()  # each image is one grey level
    assert sorted(values[:, 0, 0].tolist()) == sorted(SKIN[split].values())
    np.testing.assert_array_equal(labels, (values[:, 0, 0] > 128).astype(int))  # Mel (< 128) 0, Nev 1


FLAT_READERS = [
    ("get_train_test_arrays", lambda tr, te, ltr, lte: get_train_test_arrays(tr, te, ltr, lte, SIZE, SIZE, seed=1)),
    ("get_train_test_arrays_multiclass", lambda tr, te, ltr, lte: get_train_test_arrays_multiclass(
        tr, te, ltr, lte, SIZE, SIZE, ["Mel", "Nev"])),
]


@pytest.mark.parametrize("reader, read", FLAT_READERS, ids=[row[0] for row in FLAT_READERS])
@pytest.mark.parametrize("case, cwd, folder, listing", FLAT_CALLS, ids=[row[0] for row in FLAT_CALLS])
def test_train_test_arrays_take_folders_and_file_lists_either_way(course_tree, monkeypatch, case, cwd, folder,
                                                                   listing, reader, read):
    monkeypatch.chdir(course_tree / cwd)
    train, test = folder(course_tree, "train"), folder(course_tree, "test")
    x_train, x_test, y_train, y_test = read(train, test, listing(train), listing(test))
    check_skin(x_train, y_train, "train")
    check_skin(x_test, y_test, "test")


@pytest.mark.parametrize("reader", ["get_data", "get_data_multiclass"])
@pytest.mark.parametrize("case, cwd, folder, listing", FLAT_CALLS, ids=[row[0] for row in FLAT_CALLS])
def test_get_data_takes_folders_and_file_lists_either_way(course_tree, monkeypatch, case, cwd, folder, listing,
                                                          reader):
    monkeypatch.chdir(course_tree / cwd)
    train = folder(course_tree, "train")
    read = {"get_data": get_data, "get_data_multiclass": get_data_multiclass}[reader]
    pairs = read(train, listing(train), SIZE, SIZE, seed=3)
    images = np.stack([image for image, _ in pairs])[..., None]
    check_skin(images, np.array([int(label[0]) for _, label in pairs]), "train")


def test_one_seed_gives_one_order_whatever_the_listing_order(course_tree):
    names = os.listdir("Data/Lab1/Skin/train")
    first = get_data("Data/Lab1/Skin/train", names, SIZE, SIZE, seed=5)
    second = get_data("Data/Lab1/Skin/train", names[::-1], SIZE, SIZE, seed=5)
    np.testing.assert_array_equal(np.stack([i for i, _ in first]), np.stack([i for i, _ in second]))


@pytest.mark.parametrize("name, label", [
    ("Mel_1.png", 0),
    ("Data/Lab1/Skin/train/Nev_2.png", 1),
    ("Data/Nevus_study/Mel_3.png", 0),  # only the file name counts: the folder holds the other pattern
    (Path("Data/Melanoma/Nev_1.png"), 1),
    ("/abs/Mel_only/Nev_1.png", 1),
    ("~/Mel_only/Nev_1.png", 1),
])
def test_gen_labels_reads_the_file_name_of_a_path(name, label):
    assert gen_labels(name, "Mel", "Nev").tolist() == [label]
    assert gen_labels_multiclass(name, ["Mel", "Nev"]).tolist() == [label]


def test_gen_labels_reads_the_file_name_of_an_os_scandir_entry(course_tree):
    """``for entry in os.scandir(folder)``: the entry's name, not its repr (``<DirEntry 'Mel_1.png'>``)."""
    entries = sorted(os.scandir("Data/Lab1/Skin/train"), key=lambda entry: entry.name)
    labels = [gen_labels_multiclass(e, ["DirEntry", "Mel", "Nev"]).tolist() for e in entries if e.name[0] in "MN"]
    assert labels == [[1], [1], [1], [2], [2]]


# --- Lab 2 class folders: get_length and pretrain_data_label -------------------------------------------------------

GET_LENGTH_CALLS = [
    ("handout: folder/ and class name", ".", lambda root: ("Data/Lab2/Bone/train/", "AFF", "NFF")),
    ("class paths that hold the folder", ".",
     lambda root: ("Data/Lab2/Bone/train", os.path.join("Data/Lab2/Bone/train", "AFF/"),
                   os.path.join("Data/Lab2/Bone/train", "NFF"))),
    ("trailing separator on the class", ".", lambda root: ("Data/Lab2/Bone/train", "AFF/", "NFF/")),
    ("pathlib", ".", lambda root: (Path("Data/Lab2/Bone/train"), Path("AFF"), Path("Data/Lab2/Bone/train/NFF"))),
    ("absolute", "notebooks", lambda root: (root / "Data/Lab2/Bone/train", "AFF", str(root / "Data/Lab2/Bone/train/NFF"))),
    ("another working directory: ../", "notebooks", lambda root: ("../Data/Lab2/Bone/train/", "AFF", "NFF")),
    ("~ folder", "notebooks", lambda root: ("~/Data/Lab2/Bone/train", "AFF/", "~/Data/Lab2/Bone/train/NFF/")),
]


@pytest.mark.parametrize("case, cwd, call", GET_LENGTH_CALLS, ids=[row[0] for row in GET_LENGTH_CALLS])
def test_get_length_counts_the_images_of_a_class_folder_either_way(course_tree, monkeypatch, case, cwd, call):
    monkeypatch.chdir(course_tree / cwd)
    folder, aff, nff = call(course_tree)
    assert (get_length(folder, aff), get_length(folder, nff)) == (3, 2)  # AFF's Thumbs.db is not an image


@pytest.fixture
def mean_encoder(monkeypatch):
    """pretrain_data_label with an encoder that returns each image's mean grey level (no VGG16 to build): features
    that show which image each row came from."""
    import keras

    import labkit.features

    def encoder(name, input_shape, weights=None, trainable=False):
        return keras.Sequential([keras.Input(input_shape), keras.layers.GlobalAveragePooling2D(keepdims=True)])

    monkeypatch.setattr(labkit.features, "imagenet_backbone", encoder)


PRETRAIN_CALLS = [
    ("handout: folders/ and class names", ".",
     lambda root: ("Data/Lab2/Bone/train/", "Data/Lab2/Bone/validation/", ["AFF", "NFF"])),
    ("default classes (sorted folders)", ".", lambda root: ("Data/Lab2/Bone/train", "Data/Lab2/Bone/validation", None)),
    ("pathlib", ".", lambda root: (Path("Data/Lab2/Bone/train"), Path("Data/Lab2/Bone") / "validation", ("AFF", "NFF"))),
    ("absolute", "notebooks",
     lambda root: (str(root / "Data/Lab2/Bone/train"), root / "Data/Lab2/Bone/validation", ["AFF", "NFF"])),
    ("class paths that hold the training folder", ".",
     lambda root: ("Data/Lab2/Bone/train", "Data/Lab2/Bone/validation",
                   [os.path.join("Data/Lab2/Bone/train", "AFF/"), Path("Data/Lab2/Bone/train/NFF")])),
    ("another working directory: ../", "notebooks",
     lambda root: ("../Data/Lab2/Bone/train/", "../Data/Lab2/Bone/validation", ["AFF/", "NFF/"])),
    ("~ folders", "notebooks",
     lambda root: ("~/Data/Lab2/Bone/train/", Path("~/Data/Lab2/Bone/validation"),
                   ["AFF", "~/Data/Lab2/Bone/train/NFF"])),
]


@pytest.mark.parametrize("case, cwd, call", PRETRAIN_CALLS, ids=[row[0] for row in PRETRAIN_CALLS])
def test_pretrain_data_label_takes_the_folders_either_way(course_tree, monkeypatch, mean_encoder, case, cwd, call):
    monkeypatch.chdir(course_tree / cwd)
    train_dir, val_dir, class_labels = call(course_tree)
    train_x, train_y, val_x, val_y = pretrain_data_label(train_dir, val_dir, 32, 32, 2, class_labels=class_labels,
                                                         weights="none", cache_dir=course_tree / "cache" / cwd)
    for split, features, labels in (("train", train_x, train_y), ("validation", val_x, val_y)):
        expected = BONE[split]["AFF"] + BONE[split]["NFF"]  # files sorted by class, then name
        np.testing.assert_allclose(features[:, 0, 0, 0] * 255, expected, atol=0.5)
        assert labels.tolist() == [0] * len(BONE[split]["AFF"]) + [1] * len(BONE[split]["NFF"])


# --- single files: load_image and load_mask ------------------------------------------------------------------------

FILE_CALLS = [
    ("relative str", ".", lambda root, folder, name: f"Data/CT/{folder}/{name}"),
    ("./ relative", ".", lambda root, folder, name: f"./Data/CT/{folder}/{name}"),
    ("pathlib", ".", lambda root, folder, name: Path("Data/CT") / folder / name),
    ("absolute", "notebooks", lambda root, folder, name: str(root / "Data/CT" / folder / name)),
    ("os.path.join(image_dir, name) from another working directory", "notebooks",
     lambda root, folder, name: os.path.join(os.path.join("../Data/CT", f"{folder}/"), name)),
    ("~ str", "notebooks", lambda root, folder, name: f"~/Data/CT/{folder}/{name}"),
    ("~ pathlib", "notebooks", lambda root, folder, name: Path("~") / "Data/CT" / folder / name),
]


@pytest.mark.parametrize("case, cwd, path", FILE_CALLS, ids=[row[0] for row in FILE_CALLS])
def test_load_image_and_load_mask_take_any_spelling_of_a_file(course_tree, monkeypatch, case, cwd, path):
    monkeypatch.chdir(course_tree / cwd)
    want_image, want_mask = expected_ct([CT_NAMES.index("Im2_1")])
    np.testing.assert_allclose(load_image(path(course_tree, "Image", "Im2_1.png"), SIZE, SIZE), want_image[0],
                               atol=1e-6)
    np.testing.assert_array_equal(load_mask(path(course_tree, "Mask", "Im2_1_Mask.png"), SIZE, SIZE), want_mask[0])
