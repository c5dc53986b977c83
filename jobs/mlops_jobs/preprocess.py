"""preprocess: load a scikit-learn bundled dataset, add seeded label noise, split stratified, upload.

Or, with ``data_source``, take a split someone saved (``s3://bucket/prefix/{train,test}.csv``) as it is.
Either way the split's content hash is checked against ``data_content_hash`` when the run names one,
before anything is written: a run never goes on with bytes other than the ones it asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops_jobs import data
from mlops_jobs.config import (
    ConfigError,
    Env,
    data_bucket,
    data_source,
    expected_content_hash,
    write_xcom,
)
from mlops_jobs.timing import Stopwatch

if TYPE_CHECKING:
    import numpy as np

# Only datasets shipped inside the scikit-learn wheel: no download at run time.
DATASETS = {
    "breast_cancer": "load_breast_cancer",
    "digits": "load_digits",
    "iris": "load_iris",
    "wine": "load_wine",
}


@dataclass(frozen=True)
class PreprocessConfig:
    dag_run_id: str
    dataset: str
    label_noise: float
    seed: int
    test_size: float
    bucket: str
    data_source: str = ""  # "" = generate the split from the bundled dataset
    expected_hash: str = ""  # "" = no check

    @classmethod
    def from_env(cls, env: Env) -> PreprocessConfig:
        dataset = env.text("MLOPS_DATASET")
        if dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(sorted(DATASETS))}")
        return cls(
            dag_run_id=env.text("MLOPS_DAG_RUN_ID"),
            dataset=dataset,
            label_noise=env.number("MLOPS_LABEL_NOISE", 0.0, 0.5),
            seed=env.integer("MLOPS_SEED", low=0),
            test_size=env.number("MLOPS_TEST_SIZE", 0.0, 0.5, open_low=True),
            bucket=data_bucket(env),
            data_source=data_source(env),
            expected_hash=expected_content_hash(env),
        )


def add_label_noise(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Move ``round(fraction * n)`` labels, chosen by ``seed``, to a different class."""
    import numpy as np

    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    noisy = y.copy()
    flip = rng.choice(len(y), size=round(fraction * len(y)), replace=False)
    # An offset in [1, k-1] always lands on another class.
    offsets = rng.integers(1, len(classes), size=len(flip))
    positions = np.searchsorted(classes, y[flip])
    noisy[flip] = classes[(positions + offsets) % len(classes)]
    return noisy


def generate(cfg: PreprocessConfig) -> tuple[dict[str, bytes], dict[str, object]]:
    """The bundled dataset with seeded label noise, split stratified: files and manifest metadata."""
    import sklearn
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    bunch = getattr(sklearn.datasets, DATASETS[cfg.dataset])(as_frame=True)
    frame = bunch.frame.rename(columns={bunch.target.name: data.TARGET})
    frame[data.TARGET] = add_label_noise(frame[data.TARGET].to_numpy(), cfg.label_noise, cfg.seed)
    train, test = train_test_split(
        frame, test_size=cfg.test_size, random_state=cfg.seed, stratify=frame[data.TARGET]
    )
    meta: dict[str, object] = {
        "dataset": cfg.dataset,
        "label_noise": cfg.label_noise,
        "seed": cfg.seed,
        "test_size": cfg.test_size,
        "classes": sorted(int(c) for c in frame[data.TARGET].unique()),
        "source": f"generated (scikit-learn {sklearn.__version__})",
    }
    return data.split_files(train, test), meta


# What a saved split's manifest says about how it was made; kept so MLflow records the same params.
_SOURCE_META = ("dataset", "label_noise", "seed", "test_size", "classes")


def from_source(cfg: PreprocessConfig) -> tuple[dict[str, bytes], dict[str, object]]:
    """A saved split, byte for byte; how it was made comes from its manifest, else from this run's params."""
    files, manifest = data.read_source(cfg.data_source)
    described = {k: manifest[k] for k in _SOURCE_META if k in manifest} if manifest else {}
    meta: dict[str, object] = {
        "dataset": cfg.dataset,
        "label_noise": cfg.label_noise,
        "seed": cfg.seed,
        "test_size": cfg.test_size,
        **described,
        "source": cfg.data_source,
    }
    return files, meta


def run(env: Env | None = None) -> dict[str, object]:
    env = env or Env()
    cfg = PreprocessConfig.from_env(env)  # validate before the slow imports
    watch = Stopwatch()
    # Imported here only to time them apart (generate and the S3 client import them lazily).
    import boto3  # noqa: F401
    import pandas  # noqa: F401

    if not cfg.data_source:
        import sklearn.datasets
        import sklearn.model_selection  # noqa: F401

    watch.lap("imports")
    files, meta = from_source(cfg) if cfg.data_source else generate(cfg)
    watch.lap("split")
    what = (
        f"the split read from {cfg.data_source}"
        if cfg.data_source
        else (
            f"the split generated from {cfg.dataset} (seed {cfg.seed}, test_size {cfg.test_size}, "
            f"label_noise {cfg.label_noise}, {meta['source']})"
        )
    )
    fix = (
        "Copy the expected data there again (sandbox reproduce --copy-data), or point data_source at it."
        if cfg.data_source
        else "Generating it with other library versions gives other bytes: run with the versions that "
        "produced the hash, or give the saved split as data_source."
    )
    data.verify_content_hash(cfg.expected_hash, data.content_hash(files), what, fix)
    manifest = data.write_split(cfg.bucket, cfg.dag_run_id, files, meta)
    watch.lap("s3")
    rows, checked = manifest["rows"], ", as expected" if cfg.expected_hash else ""
    print(
        f"preprocess: {meta['source']} -> s3://{cfg.bucket}/{data.run_prefix(cfg.dag_run_id)} "
        f"({rows['train']} train / {rows['test']} test rows, {manifest['content_hash']}{checked})"
    )
    result = {"dataset": meta["dataset"], "content_hash": manifest["content_hash"], "rows": manifest["rows"]}
    print(f"preprocess: timings {watch}")
    write_xcom(result, env)
    return result
