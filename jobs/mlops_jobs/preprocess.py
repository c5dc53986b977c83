"""preprocess: load a scikit-learn bundled dataset, add seeded label noise, split stratified, upload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops_jobs import data
from mlops_jobs.config import ConfigError, Env, data_bucket, write_xcom

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


def run(env: Env | None = None) -> dict[str, object]:
    env = env or Env()
    cfg = PreprocessConfig.from_env(env)  # validate before the slow imports

    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    bunch = getattr(sklearn.datasets, DATASETS[cfg.dataset])(as_frame=True)
    frame = bunch.frame.rename(columns={bunch.target.name: data.TARGET})
    frame[data.TARGET] = add_label_noise(frame[data.TARGET].to_numpy(), cfg.label_noise, cfg.seed)
    train, test = train_test_split(
        frame, test_size=cfg.test_size, random_state=cfg.seed, stratify=frame[data.TARGET]
    )
    meta = {
        "dataset": cfg.dataset,
        "label_noise": cfg.label_noise,
        "seed": cfg.seed,
        "test_size": cfg.test_size,
        "classes": sorted(int(c) for c in frame[data.TARGET].unique()),
    }
    manifest = data.write_split(cfg.bucket, cfg.dag_run_id, train, test, meta)
    print(
        f"preprocess: {cfg.dataset} -> s3://{cfg.bucket}/{data.run_prefix(cfg.dag_run_id)} "
        f"({len(train)} train / {len(test)} test rows, {manifest['content_hash']})"
    )
    result = {"dataset": cfg.dataset, "content_hash": manifest["content_hash"], "rows": manifest["rows"]}
    write_xcom(result, env)
    return result
