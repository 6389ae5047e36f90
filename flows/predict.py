"""The ``predict`` flow: a registered model over every video of an Action Genome folder,
one task per shard of videos, each shard written atomically and skipped when a re-run finds
it finished; the shards are joined into ``predictions.parquet`` and the run is logged to
MLflow with the model version used::

    python flows/predict.py --model scenellm@champion --data data/ --shard-size 8
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from scenellm.inference.batch import cached_predictor, combine_shards, log_batch, plan_batch
from scenellm.inference.batch import predict_shard as predict_videos
from scenellm.project import Project


@task(name="predict-shard", cache_policy=NO_CACHE)
def predict_shard(model: str, tracking_uri: str, data_root: str, videos: list[str], mode: str,
                  path: str) -> dict:
    predictor, _ = cached_predictor(model, tracking_uri)
    _, computed = predict_videos(predictor, data_root, videos, mode, Path(path))
    return {"path": path, "computed": computed}


@flow(name="predict", log_prints=True)
def predict(model: str = "scenellm@champion", data: str = "data", videos: list[str] | None = None,
            mode: str = "predcls", out: str | None = None, shard_size: int = 8) -> dict:
    project = Project.discover()
    job = plan_batch(project, model, project.data_root(data), videos, mode, out, shard_size)
    start = time.perf_counter()
    shards = predict_shard.map(model, project.mlflow_tracking_uri, job.data_root,
                               [part for part, _ in job.shards], mode,
                               [path for _, path in job.shards]).result()
    seconds = time.perf_counter() - start
    table = combine_shards([Path(s["path"]) for s in shards], Path(job.out))
    computed = sum(s["computed"] for s in shards)
    frames = int(table.groupby("video")["frame_index"].nunique().sum()) if len(table) else 0
    outcome = {"videos": sum(len(p) for p, _ in job.shards), "frames": frames,
               "triplets": len(table), "shards_computed": computed,
               "shards_reused": len(shards) - computed, "seconds": seconds,
               "model_version": job.ref.version, "out": job.out}
    if computed == len(shards) and seconds > 0:  # a speed only when every shard ran
        outcome["frames_per_second"] = frames / seconds
    outcome["run_id"] = log_batch(project, job, outcome, str(flow_run.get_id()))
    print(f"predict {model}: {outcome}")
    return outcome


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("::")[0])
    parser.add_argument("--model", default="scenellm@champion")
    parser.add_argument("--data", default="data")
    parser.add_argument("--video", action="append", dest="videos")
    parser.add_argument("--mode", default="predcls")
    parser.add_argument("--out")
    parser.add_argument("--shard-size", type=int, default=8)
    args = parser.parse_args()
    predict(args.model, args.data, args.videos, args.mode, args.out, args.shard_size)
