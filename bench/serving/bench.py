"""Prediction-server benchmark: deckhand vs its peers vs two floors, side by side in one run, driven by wrk.

    python bench/serving/bench.py                                  # the full run (about 11 min on 2 CPUs)
    python bench/serving/bench.py --peers kserve --duration 3 --payloads 1 --workers 2   # a smoke run
    python bench/serving/bench.py --memory                         # RSS of one server holding 50 deployments

Every server serves the SAME scikit-learn model: GradientBoostingClassifier(n_estimators=100) trained on
scikit-learn's bundled breast-cancer data (binary, 30 numeric features), saved with joblib and packaged
for each server. Before timing, each server's answers for the 1-row and 100-row payloads are checked
against the model's in-process predict_proba(); a server that differs is reported as FAILED, not timed.

Servers (peers each in their own venv under $DECKHAND_CACHE_DIR/bench/<peer>, installed on first use):
  deckhand   `deckhand serve --package` (micro-batching on); workers: `--workers N`
  mlflow     `mlflow models serve --env-manager local` (mlflow.sklearn model, predict_proba); `--workers N`
  drum       DataRobot's `drum server` (built-in sklearn predictor, .pkl artifact); `--max-workers N`
  kserve     KServe's Python model server (kserve.ModelServer + a kserve.Model); `--workers N` (uvicorn)
  mlserver   `mlserver start` with mlserver-sklearn; `parallel_workers` (inference worker processes)
Floors:
  floor-http     a bare ASGI app on uvicorn (httptools + uvloop) returning a constant body: the most any
                 Python server on this stack can do; `--workers N`
  floor-predict  the model's predict_proba() called in-process, no HTTP (calls/s; p50/p99 of one call)

Each server runs with its default workers and with 2 workers; each is measured with wrk at -c16 and -c1,
with 1-row and 100-row JSON bodies (each server's own JSON request format; DRUM takes CSV only).
All servers at one worker setting run at once and take turns, in --rounds short wrk runs per cell, so
load from elsewhere on the machine hits them alike. The "vs best peer" column is req/s divided by the
best peer's req/s at equal workers, payload and connections; the issue's targets are checked at the end.
Every wrk run is bounded by --duration; servers run in their own process group and are stopped by PID.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("DECKHAND_CACHE_DIR", Path.home() / ".cache" / "deckhand")) / "bench"
PEERS = ("mlflow", "drum", "kserve", "mlserver")
PEER_PACKAGES = {
    "mlflow": ["mlflow-skinny", "scikit-learn", "pandas", "cloudpickle", "fastapi", "uvicorn"],
    "drum": ["datarobot-drum", "scikit-learn"],
    "kserve": ["kserve", "scikit-learn", "joblib"],
    # uvloop 0.22+ makes asyncio.get_event_loop() raise, which kills MLServer 1.7's parallel workers
    "mlserver": ["mlserver", "mlserver-sklearn", "scikit-learn", "uvloop<0.22"],
}
TOLERANCE = 1e-6  # absolute, on the positive-class probability

# Trains the benchmark model; run by each Python that needs a pickle (pickles are tied to versions).
TRAIN = textwrap.dedent(
    """
    import sys, joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    x, y = load_breast_cancer(return_X_y=True)
    joblib.dump(GradientBoostingClassifier(n_estimators=100, random_state=0).fit(x, y), sys.argv[1])
    """
)

FLOOR_APP = textwrap.dedent(
    """
    BODY = b'{"data":[{"rowId":0,"prediction":"1"}]}'
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(BODY)).encode())]})
        await send({"type": "http.response.body", "body": BODY})
    """
)


# -- data ---------------------------------------------------------------------------------------------------
@dataclass
class Data:
    features: list[str]
    rows: list[list[float]]  # 100 rows from the dataset, both classes

    def take(self, n: int) -> list[list[float]]:
        return self.rows[:n]


def load_data() -> Data:
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(data.data))[:100]
    return Data([n.replace(" ", "_") for n in data.feature_names], data.data[order].tolist())


def python_sklearn(python: Path | str) -> str:
    out = subprocess.run(
        [str(python), "-c", "import sklearn; print(sklearn.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def model_for(python: Path | str, reference: Path, out: Path) -> str:
    """The benchmark model for this Python: the reference file itself when scikit-learn versions agree."""
    import sklearn

    theirs = python_sklearn(python)
    if theirs == sklearn.__version__:
        shutil.copyfile(reference, out)
        return ""
    subprocess.run([str(python), "-c", TRAIN, str(out)], check=True, timeout=600)
    return f"retrained with scikit-learn {theirs}"


# -- servers ------------------------------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    command: Callable[[int | None], list[str]]  # workers (None = the server's default) -> argv; {port}
    path: str
    ready_path: str
    body: Callable[[list[list[float]]], str]
    extract: Callable[[bytes, int], list[float]]  # response, rows -> positive-class probabilities
    default_workers: int
    content_type: str = "application/json"
    env: Callable[[int | None], dict[str, str]] = lambda workers: {}
    peer: bool = True
    check: bool = True
    note: str = ""


@dataclass
class Result:
    server: str
    workers: str
    payload: int
    conns: int
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0
    note: str = ""
    peer: bool = False
    n_workers: int = 0
    ratio: float | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _probabilities(rows: list[list[float]], column: int = 1) -> list[float]:
    return [float(r[column]) for r in rows]


def deckhand_server(package: Path, data: Data) -> Server:
    serve = [sys.executable, "-c", "from deckhand.cli.serve_commands import main; main()"]

    def command(workers: int | None) -> list[str]:
        extra = ["--workers", str(workers)] if workers else []
        return [
            *serve,
            "--package",
            str(package),
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--log-level",
            "warning",
            *extra,
        ]

    def extract(raw: bytes, n: int) -> list[float]:
        return [
            next(float(v["value"]) for v in row["predictionValues"] if v["label"] == "1")
            for row in json.loads(raw)["data"]
        ]

    return Server(
        "deckhand",
        command,
        "/predictions",
        "/ping",
        lambda rows: json.dumps({"columns": data.features, "data": rows}),
        extract,
        default_workers=os.cpu_count() or 1,  # `deckhand serve` runs one worker per CPU by default
        peer=False,
        note="--workers",
    )


def floor_server(workdir: Path, data: Data) -> Server:
    (workdir / "floor_app.py").write_text(FLOOR_APP)

    def command(workers: int | None) -> list[str]:
        extra = ["--workers", str(workers)] if workers else []
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "floor_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
            *extra,
        ]

    return Server(
        "floor-http",
        command,
        "/predictions",
        "/",
        lambda rows: json.dumps({"columns": data.features, "data": rows}),
        lambda raw, n: [],
        default_workers=1,
        peer=False,
        check=False,
        note="constant body",
    )


def peer_python(peer: str) -> Path:
    venv = CACHE / peer
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PEER_PACKAGES[peer]],
            check=True,
            timeout=1800,
        )
        marker.write_text("ok\n")
    return python


def _with_path(bindir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    # The model was fitted on arrays; servers that hand it a DataFrame would print scikit-learn's
    # "X has feature names" warning on every request, which is our setup's cost, not theirs.
    return {"PATH": f"{bindir}:{os.environ['PATH']}", "PYTHONWARNINGS": "ignore::UserWarning", **(extra or {})}


def peer_server(peer: str, workdir: Path, reference: Path, data: Data) -> Server:
    python = peer_python(peer)
    bindir = python.parent
    home = workdir / peer
    home.mkdir(exist_ok=True)
    model = home / "model.joblib"
    retrained = model_for(python, reference, model)
    if peer == "mlflow":
        code = textwrap.dedent(
            f"""
            import joblib, pandas as pd, mlflow.sklearn
            from mlflow.models import infer_signature
            x = pd.DataFrame({data.rows!r}, columns={data.features!r})
            mlflow.sklearn.save_model(joblib.load({str(model)!r}), {str(home / "m")!r},
                                      signature=infer_signature(x), pyfunc_predict_fn="predict_proba",
                                      serialization_format="cloudpickle")
            """
        )
        subprocess.run([str(python), "-c", code], check=True, timeout=600, cwd=home)

        def mlflow_cmd(workers: int | None) -> list[str]:
            extra = ["--workers", str(workers)] if workers else []
            return [
                str(bindir / "mlflow"),
                "models",
                "serve",
                "-m",
                str(home / "m"),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                "{port}",
                *extra,
            ]

        return Server(
            "mlflow",
            mlflow_cmd,
            "/invocations",
            "/ping",
            lambda rows: json.dumps({"dataframe_split": {"columns": data.features, "data": rows}}),
            lambda raw, n: _probabilities(json.loads(raw)["predictions"]),
            default_workers=1,
            env=lambda w: _with_path(bindir),
            note=retrained or "--workers",
        )
    if peer == "drum":
        code_dir = home / "code"
        code_dir.mkdir(exist_ok=True)
        # DRUM's sklearn predictor reads a .pkl with pickle.load: re-save the same estimator as a plain pickle
        subprocess.run(
            [
                str(python),
                "-c",
                "import joblib, pickle, sys; pickle.dump(joblib.load(sys.argv[1]), open(sys.argv[2], 'wb'))",
                str(model),
                str(code_dir / "model.pkl"),
            ],
            check=True,
            timeout=300,
        )

        def drum_cmd(workers: int | None) -> list[str]:
            extra = ["--max-workers", str(workers)] if workers else []
            return [
                str(bindir / "drum"),
                "server",
                "--code-dir",
                str(code_dir),
                "--target-type",
                "binary",
                "--positive-class-label",
                "1",
                "--negative-class-label",
                "0",
                "--address",
                "127.0.0.1:{port}",
                *extra,
            ]

        def drum_body(rows: list[list[float]]) -> str:
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(data.features)
            writer.writerows([repr(v) for v in row] for row in rows)
            return out.getvalue()

        def drum_extract(raw: bytes, n: int) -> list[float]:
            return [float(row["1"]) for row in json.loads(raw)["predictions"]]

        return Server(
            "drum",
            drum_cmd,
            "/predict/",
            "/",
            drum_body,
            drum_extract,
            default_workers=1,
            content_type="text/csv",
            env=lambda w: _with_path(bindir),
            note=retrained or "--max-workers; CSV body (DRUM takes no JSON rows)",
        )
    if peer == "kserve":
        script = home / "serve.py"
        script.write_text(
            textwrap.dedent(
                f"""
            import sys, joblib, numpy as np, kserve
            class GBC(kserve.Model):
                def __init__(self):
                    super().__init__("gbc")
                    self.model = joblib.load({str(model)!r})
                    self.ready = True
                def predict(self, payload, headers=None):
                    return {{"predictions": self.model.predict_proba(
                        np.asarray(payload["instances"], dtype=float)).tolist()}}
            if __name__ == "__main__":  # workers > 1 are spawned processes that re-import this file
                kwargs = {{"workers": int(sys.argv[2])}} if len(sys.argv) > 2 else {{}}
                kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, **kwargs).start([GBC()])
            """
            )
        )

        def kserve_cmd(workers: int | None) -> list[str]:
            return [str(python), str(script), "{port}", *([str(workers)] if workers else [])]

        return Server(
            "kserve",
            kserve_cmd,
            "/v1/models/gbc:predict",
            "/v1/models/gbc",
            lambda rows: json.dumps({"instances": rows}),
            lambda raw, n: _probabilities(json.loads(raw)["predictions"]),
            default_workers=1,
            note=retrained or "ModelServer(workers=N)",
        )
    if peer == "mlserver":
        (home / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": "gbc",
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib"},
                }
            )
        )
        (home / "settings.json").write_text(json.dumps({"debug": False}))

        def mlserver_env(workers: int | None) -> dict[str, str]:
            env = {
                "MLSERVER_HTTP_PORT": "{port}",
                "MLSERVER_GRPC_PORT": str(free_port()),
                "MLSERVER_METRICS_PORT": str(free_port()),
                "MLSERVER_METRICS_ENDPOINT": "",
                "MLSERVER_HOST": "127.0.0.1",
            }
            if workers:
                env["MLSERVER_PARALLEL_WORKERS"] = str(workers)
            return _with_path(bindir, env)

        def mlserver_body(rows: list[list[float]]) -> str:
            flat = [v for row in rows for v in row]
            return json.dumps(
                {
                    "inputs": [
                        {"name": "x", "shape": [len(rows), len(data.features)], "datatype": "FP64", "data": flat}
                    ],
                    "outputs": [{"name": "predict_proba"}],
                }
            )

        def mlserver_extract(raw: bytes, n: int) -> list[float]:
            flat = json.loads(raw)["outputs"][0]["data"]
            return [float(flat[2 * i + 1]) for i in range(n)]

        return Server(
            "mlserver",
            lambda w: [str(bindir / "mlserver"), "start", str(home)],
            "/v2/models/gbc/infer",
            "/v2/models/gbc/ready",
            mlserver_body,
            mlserver_extract,
            default_workers=1,
            env=mlserver_env,
            note=retrained or "parallel_workers (inference pool)",
        )
    raise SystemExit(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")


# -- running ------------------------------------------------------------------------------------------------
def _ms(text: str) -> float:
    number = re.match(r"[\d.]+", text)
    if number is None:  # wrk prints -nan when it saw no replies
        return float("nan")
    value = float(number.group())
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    if text.endswith("s"):
        return value * 1000
    return value


def run_wrk(url: str, body: str, content_type: str, conns: int, duration: float, workdir: Path) -> dict[str, Any]:
    script = workdir / "wrk.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        f'wrk.headers["Content-Type"] = {json.dumps(content_type)}\n'
    )
    threads = min(2, conns)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{conns}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout
    patterns = (r"Requests/sec:\s+([\d.]+)", r"^\s+50%\s+(\S+)", r"^\s+99%\s+(\S+)")
    found = [m.group(1) for p in patterns if (m := re.search(p, out, re.MULTILINE)) is not None]
    if len(found) != len(patterns):
        raise RuntimeError(f"cannot read wrk's output (c={conns}): {out[-400:]!r}")
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return {"rps": float(found[0]), "p50_ms": _ms(found[1]), "p99_ms": _ms(found[2]), "errors": errors}


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready within {timeout:.0f}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group (the server and the workers it forked)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:  # workers left behind by a parent that exited first
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def post(url: str, body: str, content_type: str) -> bytes:
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"HTTP {exc.code}: {exc.read()[:300]!r}") from None


def check_predictions(server: Server, url: str, data: Data, expected: list[float], payloads: list[int]) -> None:
    for n in payloads:
        raw = post(url, server.body(data.take(n)), server.content_type)
        try:
            got = server.extract(raw, n)
        except Exception as exc:
            raise RuntimeError(f"cannot read its {n}-row answer ({exc!r}): {raw[:300]!r}") from None
        if len(got) != n:
            raise RuntimeError(f"{len(got)} predictions for {n} rows")
        worst = max(abs(a - b) for a, b in zip(got, expected[:n], strict=True))
        if worst > TOLERANCE:
            raise RuntimeError(f"WRONG PREDICTIONS for {n} rows: off by up to {worst:.3g} from predict_proba()")


@dataclass
class Running:
    """One started server with its cells (one per payload and connection count)."""

    server: Server
    proc: subprocess.Popen[bytes] | None
    base: str
    cells: list[Result]
    failed: str = ""


def start_server(
    server: Server,
    workers: int | None,
    args: argparse.Namespace,
    data: Data,
    expected: list[float],
    workdir: Path,
    log: Path,
) -> Running:
    """Start the server, wait until it is ready and check its answers (before any timing)."""
    n_workers = workers or server.default_workers
    label = f"{n_workers}" + ("" if workers else " (default)")
    cells = [
        Result(server.name, label, n, c, peer=server.peer, n_workers=n_workers, note=server.note)
        for n in args.payload_list
        for c in args.conns_list
    ]
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in server.command(workers)]
    env = dict(os.environ, **{k: v.replace("{port}", str(port)) for k, v in server.env(workers).items()})
    with open(log, "ab") as logfile:
        logfile.write(f"\n=== {server.name} workers={label}: {' '.join(command)}\n".encode())
        logfile.flush()
        proc = subprocess.Popen(command, stdout=logfile, stderr=logfile, env=env, start_new_session=True, cwd=workdir)
    running = Running(server, proc, f"http://127.0.0.1:{port}", cells)
    try:
        wait_ready(running.base + server.ready_path, proc)
        if server.check:
            check_predictions(server, running.base + server.path, data, expected, args.payload_list)
    except Exception as exc:
        print(f"!!! {server.name} (workers {label}) FAILED before timing: {exc}", file=sys.stderr, flush=True)
        running.failed = f"FAILED: {exc}"
        for cell in cells:
            cell.note = running.failed
        stop(proc)
        running.proc = None
    return running


def measure_all(running: list[Running], args: argparse.Namespace, data: Data, workdir: Path) -> None:
    """Time every (payload, conns) cell on all started servers, interleaved in rounds.

    The servers take turns (in a rotating order) for --rounds short wrk runs per cell, so a load
    spike from elsewhere on the machine hits every server alike instead of whichever ran then.
    req/s is the mean over the rounds, p50 and p99 the median of the rounds' values.
    """
    live = [r for r in running if r.proc is not None]
    seconds = max(1, round(args.duration / args.rounds))
    for n in args.payload_list:
        bodies = {id(r): r.server.body(data.take(n)) for r in live}
        for r in live:  # warm-up: imports, caches, worker pools
            try:
                run_wrk(r.base + r.server.path, bodies[id(r)], r.server.content_type, 4, 2, workdir)
            except Exception:
                pass
        for conns in args.conns_list:
            rounds: dict[int, list[dict[str, Any]]] = {id(r): [] for r in live}
            for k in range(args.rounds):
                for r in live[k % len(live) :] + live[: k % len(live)]:
                    try:
                        rounds[id(r)].append(
                            run_wrk(
                                r.base + r.server.path, bodies[id(r)], r.server.content_type, conns, seconds, workdir
                            )
                        )
                    except Exception as exc:
                        cell = next(c for c in r.cells if c.payload == n and c.conns == conns)
                        cell.note = f"failed: {exc}"
            for r in live:
                cell = next(c for c in r.cells if c.payload == n and c.conns == conns)
                got = rounds[id(r)]
                if not got:
                    continue
                cell.rps = statistics.fmean(g["rps"] for g in got)
                cell.p50_ms = statistics.median(g["p50_ms"] for g in got)
                cell.p99_ms = statistics.median(g["p99_ms"] for g in got)
                cell.errors = sum(g["errors"] for g in got)
                print(
                    f"  {cell.server:<10} w={cell.workers:<12} rows={n:<4} c={conns:<3} "
                    f"{cell.rps:9.0f} req/s  p50 {cell.p50_ms:7.2f}  p99 {cell.p99_ms:7.2f} ms  "
                    f"errors {cell.errors}",
                    flush=True,
                )


def predict_floor(model_path: Path, data: Data, payloads: list[int], seconds: float) -> list[Result]:
    """In-process predict_proba(): calls/s and the p50/p99 of one call, per payload size."""
    import joblib
    import numpy as np

    model = joblib.load(model_path)
    results = []
    for n in payloads:
        x = np.asarray(data.take(n), dtype=float)
        times = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            t0 = time.perf_counter()
            model.predict_proba(x)
            times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        times.sort()
        results.append(
            Result(
                "floor-predict",
                "-",
                n,
                0,
                rps=len(times) / elapsed,
                p50_ms=times[len(times) // 2] * 1000,
                p99_ms=times[int(len(times) * 0.99)] * 1000,
                note="in-process calls/s, no HTTP",
            )
        )
    return results


def add_ratios(results: list[Result]) -> None:
    best: dict[tuple[int, int, int], float] = {}
    for r in results:
        if r.peer and r.rps > 0 and not r.note.startswith(("FAILED", "failed")):
            key = (r.n_workers, r.payload, r.conns)
            best[key] = max(best.get(key, 0.0), r.rps)
    for r in results:
        if r.conns and (r.n_workers, r.payload, r.conns) in best and r.rps > 0:
            r.ratio = r.rps / best[(r.n_workers, r.payload, r.conns)]


def targets(results: list[Result]) -> list[str]:
    """The issue's targets, checked on this run's figures."""
    lines = []
    ours = [r for r in results if r.server == "deckhand" and r.rps > 0]
    floor_http = {(r.n_workers, r.payload, r.conns): r for r in results if r.server == "floor-http" and r.rps > 0}
    predict = {r.payload: r for r in results if r.server == "floor-predict"}
    for r in ours:
        where = f"workers {r.n_workers}, {r.payload}-row, -c{r.conns}"
        if r.ratio is not None:
            need = 2.0 if r.payload == 1 else 1.0
            verdict = "met" if r.ratio >= need else "MISSED"
            lines.append(f"{verdict:>6}: req/s >= {need:g}x best peer ({where}): {r.ratio:.2f}x")
        f = floor_http.get((r.n_workers, r.payload, r.conns))
        if r.conns == 1 and r.payload == 1 and f is not None and 1 in predict:
            limit = 1.5 * (f.p99_ms + predict[1].p50_ms)
            verdict = "met" if r.p99_ms <= limit else "MISSED"
            lines.append(
                f"{verdict:>6}: p99 <= 1.5 x (floor-http p99 {f.p99_ms:.2f} + predict {predict[1].p50_ms:.2f})"
                f" = {limit:.2f} ms ({where}): {r.p99_ms:.2f} ms"
            )
    return lines


def print_table(results: list[Result], args: argparse.Namespace, elapsed: float) -> None:
    load = os.getloadavg()
    print(
        f"\nload average at end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs; "
        f"wrk {args.duration:g}s per cell in {args.rounds} interleaved rounds; total run {elapsed / 60:.1f} min\n"
    )
    head = (
        f"{'server':<14} {'workers':<12} {'rows':>4} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'vs best peer':>12} {'errors':>6}  note"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        print(
            f"{r.server:<14} {r.workers:<12} {r.payload:>4} {r.conns or '-':>5} {r.rps:>8.0f} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {ratio:>12} {r.errors:>6}  {r.note}"
        )
    lines = targets(results)
    if lines:
        print("\ntargets:")
        print("\n".join(lines))


# -- memory -------------------------------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _kib(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_of(pid: int) -> tuple[int, int, int]:
    """(processes, RSS MiB summed, PSS MiB summed) over the process tree."""
    pids = _tree(pid)
    rss = sum(_kib(Path(f"/proc/{p}/status"), "VmRSS") for p in pids)
    pss = sum(_kib(Path(f"/proc/{p}/smaps_rollup"), "Pss") for p in pids)
    return len(pids), rss // 1024, pss // 1024


def memory_mode(args: argparse.Namespace, workdir: Path) -> int:
    from deckhand.deployment_dirs import install
    from deckhand.packages.demo import sample_rows, train_demo_package

    count = args.deployments
    models_dir = workdir / "deployments"
    models_dir.mkdir()
    tasks = ("multiclass", "binary", "regression")
    print(f"building {count} small scikit-learn deployments in {models_dir} ...", flush=True)
    for i in range(count):
        package = workdir / f"m{i}.dhpkg"
        train_demo_package(package, seed=i, task=tasks[i % 3], name=f"mem-{i}")  # type: ignore[arg-type]
        install(models_dir, f"deployment_{i:02d}", f"dep{i:02d}", f"model{i:02d}", package)
    log = workdir / "server.log"
    status = 0
    for workers in args.workers_list:
        port = free_port()
        command = [
            sys.executable,
            "-c",
            "from deckhand.cli.serve_commands import main; main()",
            "--models-dir",
            str(models_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *(["--workers", str(workers)] if workers else []),
        ]
        with open(log, "ab") as logfile:
            proc = subprocess.Popen(command, stdout=logfile, stderr=logfile, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base + "/ping", proc)
            deadline = time.monotonic() + 300
            while True:
                with urllib.request.urlopen(base + "/deployments", timeout=10) as response:
                    states = [d["state"] for d in json.loads(response.read())["data"]]
                if states.count("ready") == count:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {states.count('ready')} of {count} deployments ready: {states}")
                time.sleep(0.5)
            time.sleep(1.0)  # let every worker finish its own loading
            loaded = memory_of(proc.pid)
            for _ in range(max(1, workers or 1) * 2):  # requests reach any worker: send a few to each model
                for i in range(count):
                    body = json.dumps(sample_rows(1, task=tasks[i % 3]))  # type: ignore[arg-type]
                    post(f"{base}/deployments/deployment_{i:02d}/predictions", body, "application/json")
            after = memory_of(proc.pid)
        except Exception as exc:
            print(f"!!! memory run with workers={workers or 'default'} failed: {exc} (see {log})", file=sys.stderr)
            status = 1
            continue
        finally:
            stop(proc)
        label = f"{workers}" if workers else "1 (default)"
        print(f"\n`deckhand serve --models-dir` with {count} deployments, workers {label}: {loaded[0]} processes")
        print(f"  after all loaded:           RSS {loaded[1]:>5} MiB   PSS {loaded[2]:>5} MiB")
        print(
            f"  after a prediction to each: RSS {after[1]:>5} MiB   PSS {after[2]:>5} MiB   "
            f"(target: under 1024 MiB) -> {'met' if after[1] < 1024 else 'MISSED'}"
        )
    return status


# -- main ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma list of {','.join(PEERS)}, or none")
    parser.add_argument("--duration", type=float, default=10, help="seconds of wrk per cell (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="turns per cell; each runs duration/rounds s")
    parser.add_argument("--payloads", default="1,100", help="rows per request, comma list (default 1,100)")
    parser.add_argument("--conns", default="16,1", help="wrk connections, comma list (default 16,1)")
    parser.add_argument("--workers", default="default,2", help="comma list of 'default' and numbers")
    parser.add_argument("--no-floors", action="store_true", help="skip floor-http and floor-predict")
    parser.add_argument("--no-deckhand", action="store_true", help="peers (and floors) only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--memory", action="store_true", help="measure RSS of one server with many deployments")
    parser.add_argument("--deployments", type=int, default=50, help="deployments for --memory (default 50)")
    args = parser.parse_args(argv)
    args.payload_list = [int(p) for p in args.payloads.split(",")]
    if max(args.payload_list) > 100:
        raise SystemExit("--payloads: at most 100 rows")
    args.conns_list = [int(c) for c in args.conns.split(",")]
    args.workers_list = [None if w.strip() == "default" else int(w) for w in args.workers.split(",")]
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="deckhand-bench-"))
    if args.memory:
        try:
            return memory_mode(args, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    log = workdir / "servers.log"
    print(f"work dir and server logs: {workdir}", flush=True)

    import joblib
    import numpy as np
    import pandas as pd

    from deckhand.packages import build_package_from

    data = load_data()
    reference = workdir / "model.joblib"
    subprocess.run([sys.executable, "-c", TRAIN, str(reference)], check=True, timeout=600)
    expected = joblib.load(reference).predict_proba(np.asarray(data.rows))[:, 1].tolist()
    package = workdir / "gbc.dhpkg"
    build_package_from(
        reference, "sklearn", package, name="bench-gbc", training_frame=pd.DataFrame(data.rows, columns=data.features)
    )

    results: list[Result] = []
    servers: list[Server] = []
    if not args.no_floors:
        results.extend(predict_floor(reference, data, args.payload_list, min(3.0, args.duration)))
        servers.append(floor_server(workdir, data))
    if not args.no_deckhand:
        servers.append(deckhand_server(package, data))
    for peer in [p.strip() for p in args.peers.split(",") if p.strip() and p.strip() != "none"]:
        try:
            servers.append(peer_server(peer, workdir, reference, data))
        except SystemExit:
            raise
        except Exception as exc:  # a peer that cannot be installed or set up is reported, not fatal
            reason = f"NOT MEASURED: {exc}"
            print(f"!!! {peer}: {reason}", file=sys.stderr)
            results.append(Result(peer, "-", 0, 0, note=reason, peer=True))
    for workers in args.workers_list:  # every server at this worker setting runs at once, timed in turns
        running: list[Running] = []
        try:
            for server in servers:
                if workers == server.default_workers and None in args.workers_list:
                    continue  # the default already is this many workers
                running.append(start_server(server, workers, args, data, expected, workdir, log))
            measure_all(running, args, data, workdir)
        finally:
            for r in running:
                if r.proc is not None:
                    stop(r.proc)
        results.extend(cell for r in running for cell in r.cells)
    order = {name: i for i, name in enumerate(dict.fromkeys(r.server for r in results))}
    results.sort(key=lambda r: order[r.server])  # stable: per server, default workers first
    add_ratios(results)
    print_table(results, args, time.monotonic() - started)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2, default=str))
    failed = [r for r in results if r.note.startswith(("FAILED", "NOT MEASURED"))]
    if failed:
        print(f"\n{len({r.server for r in failed})} server(s) FAILED or were not measured; see notes and {log}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
