"""Published weights and their download cache: "imagenet:efficientnet-b3" (the keras.applications
files, md5-checked) and "noisy-student:efficientnet-b3" (the reference's Noisy Student archives),
cached under `$KERAS_HOME/models`."""

from __future__ import annotations

import glob
import hashlib
import os
from typing import NamedTuple

import keras

from efficientnet_tf.architecture import canonical_name

KERAS_APPS_ORIGIN = "https://storage.googleapis.com/keras-applications/"
NOISY_STUDENT_ORIGIN = (
    "https://storage.googleapis.com/cloud-tpu-checkpoints/efficientnet/noisystudent/"
)
# md5 of the published keras.applications files, (with top, notop); from keras'
# `keras/src/applications/efficientnet.py` WEIGHTS_HASHES.
KERAS_APPS_HASHES: dict[str, tuple[str, str]] = {
    "efficientnet-b0": ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    "efficientnet-b1": ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
    "efficientnet-b2": ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "efficientnet-b3": ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
    "efficientnet-b4": ("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "efficientnet-b5": ("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f"),
    "efficientnet-b6": ("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743"),
    "efficientnet-b7": ("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
}
# Noisy Student archives listed in the tensorflow/tpu EfficientNet README (no published hash).
NOISY_STUDENT_ARCHIVES: dict[tuple[str, str], str] = {
    **{
        ("noisy-student", f"efficientnet-b{i}"): f"noisy_student_efficientnet-b{i}.tar.gz"
        for i in range(8)
    },
    ("noisy-student", "efficientnet-l2"): "noisy_student_efficientnet-l2.tar.gz",
    # The same L2 architecture fine-tuned at 475x475 (README: "L2-475").
    ("noisy-student-475", "efficientnet-l2"): "noisy_student_efficientnet-l2_475.tar.gz",
}
PUBLISHED_TAGS = ("imagenet", "noisy-student", "noisy-student-475")
OFFLINE_ENV = "EFFICIENTNET_TF_OFFLINE"


class Published(NamedTuple):
    """A published weights file: where it comes from and how it is checked."""

    fname: str
    origin: str
    file_hash: str | None  # md5; None for the Noisy Student archives
    archive: bool


def published_weights(tag: str, preset: str, include_top: bool) -> Published:
    """The published file for `tag` ('imagenet', 'noisy-student') and a preset name."""
    preset = canonical_name(preset)
    if tag == "imagenet":
        if preset not in KERAS_APPS_HASHES:
            raise ValueError(
                f"No 'imagenet' (keras.applications) weights for {preset}: they exist for "
                f"{', '.join(KERAS_APPS_HASHES)}. Noisy Student weights exist for "
                f"{', '.join(sorted({p for _, p in NOISY_STUDENT_ARCHIVES}))}."
            )
        short = preset.replace("-", "")
        fname = f"{short}.h5" if include_top else f"{short}_notop.h5"
        file_hash = KERAS_APPS_HASHES[preset][0 if include_top else 1]
        return Published(fname, KERAS_APPS_ORIGIN + fname, file_hash, archive=False)
    if (tag, preset) in NOISY_STUDENT_ARCHIVES:
        fname = NOISY_STUDENT_ARCHIVES[(tag, preset)]
        return Published(fname, NOISY_STUDENT_ORIGIN + fname, None, archive=True)
    available = ", ".join(f"{t}:{p}" for t, p in NOISY_STUDENT_ARCHIVES)
    raise ValueError(
        f"No published weights '{tag}:{preset}'. Available: imagenet:b0..b7, {available}."
    )


def cache_dir() -> str:
    """Where published weights are cached: `$KERAS_HOME` (read at call time) or ~/.keras."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def _md5(path: str) -> str:
    """md5 hex digest of a file (the published keras.applications hashes are md5)."""
    hasher = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def fetch(published: Published) -> str:
    """Local path of a published file (for archives: the extracted directory), downloading it
    with keras.utils.get_file unless `$EFFICIENTNET_TF_OFFLINE` is set.

    Raises:
        FileNotFoundError: not cached and not downloadable; names the URL and the cache path.
        ValueError: a cached file whose hash differs from the published one.
    """
    directory = os.path.join(cache_dir(), "models")
    path = os.path.join(directory, published.fname)
    extracted = os.path.join(directory, published.fname.split(".")[0] + "_extracted")
    if published.archive and glob.glob(os.path.join(extracted, "**", "*.index"), recursive=True):
        return extracted  # extracted before (or by hand)
    if not os.path.exists(path):
        path = _download(published, path, extracted)
    elif published.file_hash is not None:
        actual = _md5(path)
        if actual != published.file_hash:
            raise ValueError(
                f"{path} has hash {actual}, but the published file {published.origin} has "
                f"{published.file_hash}. Delete it and download it again; to use a file of your "
                "own, pass its path as weights= instead of a published name."
            )
    if not published.archive:
        return path
    return keras.utils.get_file(  # the archive is in the cache: this only extracts it
        published.fname,
        published.origin,
        cache_subdir="models",
        cache_dir=cache_dir(),
        extract=True,
    )


def _download(published: Published, path: str, extracted: str) -> str:
    how = f"Download {published.origin} and save it as {path}"
    if published.archive:
        how += f" (or extract it into {extracted})"
    how += "; KERAS_HOME sets the cache directory (default ~/.keras)."
    if os.environ.get(OFFLINE_ENV):
        raise FileNotFoundError(f"{published.fname} is not cached and {OFFLINE_ENV} is set. {how}")
    try:
        return keras.utils.get_file(
            published.fname,
            published.origin,
            file_hash=published.file_hash,
            cache_subdir="models",
            cache_dir=cache_dir(),
        )
    except Exception as error:  # no network, HTTP error, hash mismatch after download
        raise FileNotFoundError(
            f"Could not download {published.origin} ({error}). {how}"
        ) from error
