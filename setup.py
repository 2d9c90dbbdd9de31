"""Package metadata for efficientnet_tf (models) and noisy_student (self-training system)."""

from setuptools import find_packages, setup

setup(
    name="efficientnet-noisy-student",
    version="0.1.0",
    description="EfficientNet (B0-B8, L2, any compound scaling) in Keras 3 and Noisy Student "
    "self-training on TF2 tf.distribute.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The license as a plain field: a "License ::" classifier draws setuptools' deprecation
    # warning (>= 77), and license_expression is unknown to the setuptools 61-76 we allow.
    license="Apache-2.0",
    # tools/ holds checkout-only `python -m tools.X` wrappers; the tools' code is in
    # noisy_student.cli, installed as the console scripts below.
    packages=find_packages(include=["efficientnet_tf*", "noisy_student*"]),
    # Packages sit at the top of the checkout. Saying so makes `pip install -e` (make setup)
    # use a plain .pth path instead of an import finder, which setuptools announces with an
    # "Editable installation" warning on every install.
    package_dir={"": "."},
    # The data files are exactly package_data below. With include_package_data, setuptools
    # reads the data folders (assets/configs, assets/sample_data/cifar10: no __init__.py) as
    # packages missing from `packages` and prints a "Package would be ignored" warning for each.
    include_package_data=False,
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-datasets",
        "absl-py",
        "numpy",
        "pillow",
        "matplotlib",
        # ImageNet-P: MP4 decoding (imageio-ffmpeg bundles an ffmpeg binary, no system ffmpeg).
        "imageio>=2.28",
        "imageio-ffmpeg",
    ],
    # Shipped with the package: the ImageNet class list (1000 WordNet ids), the flagfiles and
    # the CIFAR-10 demo sample (noisy_student.assets finds them from any folder).
    package_data={"noisy_student": ["data/*.txt"],
                  "noisy_student.assets": ["configs/*.cfg", "sample_data/cifar10/*"]},
    # jax[cpu] lets the tests run the model on a second Keras backend.
    # corruptions: noisy-student-make-corrupted (Hendrycks' 15 ImageNet-C corruptions, with
    # compatibility shims for scikit-image >= 0.19 and NumPy 2; see BUILD.md).
    # export: ONNX in noisy-student-export-model (tf2onnx converts, onnxruntime checks) and
    # LiteRT's TFLite interpreter (ai-edge-litert), which replaces the deprecated tf.lite one.
    # pytest-xdist: `make test` runs the suite in 2 worker processes (see BUILD.md, Test).
    # setuptools and wheel: tests/test_packaging.py builds the wheel without build isolation
    # (a Python 3.12+ venv has no setuptools of its own).
    extras_require={"test": ["pytest", "pytest-xdist", "ruff", "jax[cpu]", "imagecorruptions",
                             "tf2onnx>=1.17", "onnxruntime", "ai-edge-litert", "setuptools>=61",
                             "wheel"],
                    "corruptions": ["imagecorruptions"],
                    "export": ["tf2onnx>=1.17", "onnxruntime", "ai-edge-litert"]},
    entry_points={"console_scripts": [
        "noisy-student=noisy_student.cli.main:run",
        "noisy-student-demo=noisy_student.cli.demo:run",
        "noisy-student-eval=noisy_student.cli.evaluate:run_cli",
        "noisy-student-build-tfrecords=noisy_student.cli.build_tfrecords:run",
        "noisy-student-cam=noisy_student.cli.cam:run",
        "noisy-student-export-model=noisy_student.cli.export_model:run",
        "noisy-student-make-corrupted=noisy_student.cli.make_corrupted:run",
        "noisy-student-record-sizes=noisy_student.cli.measure_record_sizes:run",
        "noisy-student-scaling-search=noisy_student.cli.scaling_search:run",
        "efficientnet-convert-weights=noisy_student.cli.convert_weights:run",
        "efficientnet-count-flops=noisy_student.cli.count_flops:run",
    ]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
