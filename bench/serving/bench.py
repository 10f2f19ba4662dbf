"""Prediction-server benchmark: deckhand vs floors vs peer servers, driven by wrk.

    python bench/serving/bench.py                       # deckhand + floors
    python bench/serving/bench.py --peers mlflow,kserve,mlserver --duration 10

Targets (all serve the same iris model, 1-row JSON requests unless noted):
  floor-http      a bare ASGI app on uvicorn (httptools+uvloop) returning a fixed body:
                  the most any Python server on this stack can do
  floor-predict   the model's predict() called in-process, no HTTP (calls/s)
  deckhand        `deckhand serve --package` (micro-batching on)
  deckhand-nobatch  the same with --no-batching
  peers           each installed in its own venv under $DECKHAND_CACHE_DIR/bench/<peer>
                  mlflow   `mlflow models serve --env-manager local`
                  kserve   kserve.ModelServer with a scikit-learn kserve.Model
                  mlserver `mlserver start` with mlserver-sklearn
Every wrk run is bounded by --duration; servers are stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DECKHAND_CACHE_DIR", Path.home() / ".cache" / "deckhand")) / "bench"
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
FEATURES = list(ROW)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    name: str
    command: list[str]
    path: str
    body: str
    ready_path: str
    env: dict[str, str] | None = None
    method: str = "POST"


@dataclass
class Result:
    target: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    note: str = ""


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


def run_wrk(url: str, target: Target, connections: int, duration: int, workdir: Path) -> Result:
    script = workdir / f"{target.name}.lua"
    script.write_text(
        f"wrk.method = {json.dumps(target.method)}\n"
        f"wrk.body = {json.dumps(target.body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", str(script), url + target.path],
        capture_output=True, text=True, timeout=duration + 30,
    ).stdout
    patterns = (r"Requests/sec:\s+([\d.]+)", r"^\s+50%\s+(\S+)", r"^\s+99%\s+(\S+)")
    found = [re.search(p, out, re.MULTILINE) for p in patterns]
    if not all(found):
        raise RuntimeError(f"cannot read wrk's output (c={connections}): {out[-400:]!r}")
    rps, p50, p99 = float(found[0].group(1)), _ms(found[1].group(1)), _ms(found[2].group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return Result(target.name, connections, rps, p50, p99, errors)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def check_answer(url: str, target: Target) -> None:
    request = urllib.request.Request(
        url + target.path, data=target.body.encode(), method=target.method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            raise RuntimeError(f"{target.name}: status {response.status}")


def bench_target(target: Target, concurrency: list[int], duration: int, workdir: Path,
                 log: Path) -> list[Result]:
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in target.command]
    env = dict(os.environ, **{k: v.replace("{port}", str(port)) for k, v in (target.env or {}).items()})
    with open(log, "ab") as logfile:
        proc = subprocess.Popen(command, stdout=logfile, stderr=logfile, env=env,
                                start_new_session=True, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + target.ready_path, proc)
        check_answer(url, target)
        try:
            run_wrk(url, target, 8, 1, workdir)  # warm-up
        except RuntimeError:
            pass
        results = []
        for c in concurrency:
            try:
                results.append(run_wrk(url, target, c, duration, workdir))
            except Exception as exc:
                results.append(Result(target.name, c, 0, 0, 0, 0, f"failed: {exc!r}"))
        return results
    finally:
        stop(proc)


# -- floors -------------------------------------------------------------------------------
FLOOR_APP = textwrap.dedent(
    '''
    BODY = b'{"data":[{"rowId":0,"prediction":"setosa"}]}'
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
    '''
)


def predict_floor(package: Path, seconds: float = 3.0) -> tuple[float, float]:
    """In-process predict() rate for 1 row and rows/s for a 64-row batch."""
    from deckhand.packages import Batch, load_model

    model = load_model(package)
    one = Batch(FEATURES, rows=[list(ROW.values())])
    many = Batch(FEATURES, rows=[list(ROW.values())] * 64)
    rates = []
    for batch in (one, many):
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 2:
            model.predict(batch)
            calls += 1
        rates.append(calls / (time.perf_counter() - started) * len(batch))
    return rates[0], rates[1]


# -- peers --------------------------------------------------------------------------------
PEER_PACKAGES = {
    "mlflow": ["mlflow-skinny", "scikit-learn", "pandas", "cloudpickle", "fastapi", "uvicorn"],
    "kserve": ["kserve", "scikit-learn", "joblib"],
    "mlserver": ["mlserver", "mlserver-sklearn", "scikit-learn"],
}


def peer_python(peer: str) -> Path:
    venv = CACHE / peer
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *PEER_PACKAGES[peer]], check=True, timeout=1800)
        marker.write_text("ok\n")
    return python


def train_iris(python: Path, out: Path) -> None:
    """Fit the same iris model with the peer's own scikit-learn (pickles are not portable)."""
    code = textwrap.dedent(
        f'''
        import joblib, pandas as pd
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        x, y = load_iris(return_X_y=True)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
        joblib.dump(model, {str(out)!r})
        '''
    )
    subprocess.run([str(python), "-c", code], check=True, timeout=300)


def peer_target(peer: str, workdir: Path) -> Target:
    python = peer_python(peer)
    bindir = python.parent
    model_dir = workdir / f"{peer}-model"
    model_dir.mkdir(exist_ok=True)
    if peer == "mlflow":
        code = textwrap.dedent(
            f'''
            import joblib, pandas as pd, mlflow.sklearn
            from mlflow.models import infer_signature
            from sklearn.datasets import load_iris
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler
            x, y = load_iris(return_X_y=True, as_frame=True)
            x.columns = {FEATURES!r}
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
            mlflow.sklearn.save_model(model, {str(model_dir / "m")!r}, signature=infer_signature(x),
                                      pyfunc_predict_fn="predict_proba",
                                      serialization_format="cloudpickle")
            '''
        )
        if not (model_dir / "m").exists():
            subprocess.run([str(python), "-c", code], check=True, timeout=600)
        return Target(
            "mlflow",
            [str(bindir / "mlflow"), "models", "serve", "-m", str(model_dir / "m"),
             "--env-manager", "local", "-h", "127.0.0.1", "-p", "{port}", "-w", "1"],
            "/invocations", json.dumps({"dataframe_records": [ROW]}), "/ping",
            env={"PATH": f"{bindir}:{os.environ['PATH']}"},
        )
    if peer == "kserve":
        train_iris(python, model_dir / "model.joblib")
        script = model_dir / "serve.py"
        script.write_text(textwrap.dedent(
            f'''
            import sys, joblib, numpy as np, kserve
            class Iris(kserve.Model):
                def __init__(self):
                    super().__init__("iris")
                    self.model = joblib.load({str(model_dir / "model.joblib")!r})
                    self.ready = True
                def predict(self, payload, headers=None):
                    return {{"predictions": self.model.predict_proba(
                        np.asarray(payload["instances"], dtype=float)).tolist()}}
            kserve.ModelServer(http_port=int(sys.argv[1]), workers=1).start([Iris()])
            '''
        ))
        return Target("kserve", [str(python), str(script), "{port}"], "/v1/models/iris:predict",
                      json.dumps({"instances": [list(ROW.values())]}), "/v1/models/iris")
    if peer == "mlserver":
        train_iris(python, model_dir / "model.joblib")
        (model_dir / "model-settings.json").write_text(json.dumps({
            "name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        }))
        (model_dir / "settings.json").write_text(json.dumps({"debug": False}))
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                            "data": list(ROW.values())}],
                "outputs": [{"name": "predict_proba"}]}
        return Target("mlserver", [str(bindir / "mlserver"), "start", str(model_dir)],
                      "/v2/models/iris/infer", json.dumps(body), "/v2/health/ready",
                      env={"MLSERVER_HTTP_PORT": "{port}", "MLSERVER_GRPC_PORT": str(free_port()),
                           "MLSERVER_METRICS_ENDPOINT": "", "MLSERVER_PARALLEL_WORKERS": "0",
                           "MLSERVER_HOST": "127.0.0.1",
                           "PATH": f"{bindir}:{os.environ['PATH']}"})
    raise SystemExit(f"unknown peer {peer!r}; known: {', '.join(PEER_PACKAGES)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--peers", default="", help="comma list: mlflow,kserve,mlserver")
    parser.add_argument("--json", type=Path, help="also write results here")
    parser.add_argument("--only", default="", help="comma list of target names to run")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    concurrency = [int(c) for c in args.concurrency.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="deckhand-bench-"))
    log = workdir / "servers.log"
    from deckhand.packages.demo import train_demo_package

    package = workdir / "demo.dhpkg"
    train_demo_package(package)
    (workdir / "floor_app.py").write_text(FLOOR_APP)
    body = json.dumps([ROW])
    serve = [sys.executable, "-c", "from deckhand.cli.serve_commands import main; main()"]
    targets = [
        Target("floor-http", [sys.executable, "-m", "uvicorn", "floor_app:app", "--port", "{port}",
                              "--http", "httptools", "--loop", "uvloop", "--no-access-log",
                              "--log-level", "warning"], "/predictions", body, "/"),
        Target("deckhand", [*serve, "--package", str(package), "--port", "{port}",
                            "--log-level", "warning"], "/predictions", body, "/ping"),
        Target("deckhand-nobatch", [*serve, "--package", str(package), "--port", "{port}",
                                    "--no-batching", "--log-level", "warning"],
               "/predictions", body, "/ping"),
    ]
    results: list[Result] = []
    one, many = predict_floor(package)
    results.append(Result("floor-predict (1 row)", 0, one, 1000 / one, 0, 0, "in-process calls/s"))
    results.append(Result("floor-predict (64 rows)", 0, many, 0, 0, 0, "in-process rows/s"))
    for peer in filter(None, args.peers.split(",")):
        try:
            targets.append(peer_target(peer.strip(), workdir))
        except Exception as exc:  # a peer that cannot be installed is reported, not fatal
            results.append(Result(peer, 0, 0, 0, 0, 0, f"not measured: {exc}"))
    only = set(filter(None, args.only.split(",")))
    for target in targets:
        if only and target.name not in only:
            continue
        try:
            results.extend(bench_target(target, concurrency, args.duration, workdir, log))
        except Exception as exc:
            results.append(Result(target.name, 0, 0, 0, 0, 0, f"failed: {exc!r} (see {log})"))
    print(f"\nload average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"{args.duration}s per run, 1-row JSON requests\n")
    print(f"{'target':<24} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}  note")
    for r in results:
        print(f"{r.target:<24} {r.connections or '-':>5} {r.rps:>10.0f} {r.p50_ms:>8.2f} "
              f"{r.p99_ms:>8.2f} {r.errors:>6}  {r.note}")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
