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
    packages=find_packages(include=["efficientnet_tf*", "noisy_student*", "tools*"]),
    include_package_data=True,
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
    # The ImageNet-C labels file (1000 WordNet ids) ships with the package.
    package_data={"noisy_student": ["data/*.txt"]},
    # jax[cpu] lets the tests run the model on a second Keras backend.
    # corruptions: tools/make_corrupted.py (Hendrycks' 15 ImageNet-C corruptions, with
    # compatibility shims for scikit-image >= 0.19 and NumPy 2; see BUILD.md).
    # export: ONNX in tools/export_model.py (tf2onnx converts, onnxruntime checks predictions).
    extras_require={"test": ["pytest", "ruff", "jax[cpu]", "imagecorruptions", "tf2onnx>=1.17",
                             "onnxruntime"],
                    "corruptions": ["imagecorruptions"],
                    "export": ["tf2onnx>=1.17", "onnxruntime"]},
    entry_points={"console_scripts": ["noisy-student=noisy_student.main:run",
                                      "noisy-student-eval=noisy_student.evaluate_cli:run_cli"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
