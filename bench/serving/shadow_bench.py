"""Champion latency with challengers: does scoring copies slow the answers clients get?

    python bench/serving/shadow_bench.py                 # -c1 and -c8, 3 rounds of 5 s
    python bench/serving/shadow_bench.py --duration 10 --rounds 5

Two `deckhand serve --package` servers, one worker each, take turns under wrk: the champion
alone, and a mix of the same champion with 3 challengers (docs/rollouts.md). Reported: req/s
and p50/p99 per cell (median over rounds), the p99 ratio, and the challengers' copies sent,
scored and dropped. The model is the serving bench's GradientBoostingRegressor (100 trees) on
the diabetes data; the challengers are the same model retrained with other seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import run_wrk  # noqa: E402

from deckhand.packages import build_package_from, file_sha256  # noqa: E402
from deckhand.packages.mix import MixMember, write_mix  # noqa: E402
from deckhand.serving.testing import ServeProcess  # noqa: E402


def _regressor(path: Path, seed: int) -> list[float]:
    import joblib
    import pandas as pd
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor

    data = load_diabetes(as_frame=True)
    model = GradientBoostingRegressor(n_estimators=100, random_state=seed, subsample=0.9).fit(data.data, data.target)
    joblib.dump(model, path.with_suffix(".joblib"))
    frame = pd.DataFrame(data.data)
    build_package_from(path.with_suffix(".joblib"), "sklearn", path, target_type="regression", training_frame=frame)
    return [float(v) for v in data.data.iloc[0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conns", default="1,8")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deckhand-shadow-bench-"))
    row = _regressor(work / "champion.dhpkg", 0)
    for i in (1, 2, 3):
        _regressor(work / f"challenger-{i}.dhpkg", i)
    champion = work / "champion.dhpkg"
    members = [MixMember("champion", "champion", 100, file_sha256(champion), champion)]
    for i in (1, 2, 3):
        package = work / f"challenger-{i}.dhpkg"
        members.append(MixMember(f"challenger-{i}", "challenger", 0, file_sha256(package), package))
    write_mix(work / "mix.dhpkg", "mix-bench", members, None)

    columns = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    body = ",".join(columns) + "\n" + ",".join(map(str, row)) + "\n"
    env = {"DECKHAND_MONITORING": "off", "DECKHAND_CACHE_DIR": str(work / "cache")}
    servers = {
        "champion alone": ServeProcess(["--package", str(champion)], work / "alone.log", env=env),
        "with 3 challengers": ServeProcess(["--package", str(work / "mix.dhpkg")], work / "mix.log", env=env),
    }
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            server.wait_ready()
            run_wrk(f"{server.url}/predictions", body, "text/csv", 4, 2, work)  # warm up (starts the scorer)
        time.sleep(3)
        for _ in range(args.rounds):
            for conns in (int(c) for c in args.conns.split(",")):
                for name, server in servers.items():
                    results.setdefault((name, conns), []).append(
                        run_wrk(f"{server.url}/predictions", body, "text/csv", conns, args.duration, work)
                    )
        with urllib.request.urlopen(f"{servers['with 3 challengers'].url}/info") as response:
            shadow = json.load(response)["mix"]["shadow"]
    finally:
        for server in servers.values():
            server.stop()
    print(f"{'server':<20} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for (name, conns), runs in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        rps, p50, p99 = (statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms"))
        print(f"{name:<20} {conns:>5} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f}")
    for conns in (int(c) for c in args.conns.split(",")):
        alone = statistics.median(r["p99_ms"] for r in results[("champion alone", conns)])
        mixed = statistics.median(r["p99_ms"] for r in results[("with 3 challengers", conns)])
        print(f"-c{conns}: p99 with 3 challengers / alone = {mixed / alone:.2f}")
    print(f"challengers' copies: {shadow}")


if __name__ == "__main__":
    main()
