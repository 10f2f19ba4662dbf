"""Prediction-server benchmark: deckhand vs its peers vs two floors, side by side in one run, driven by wrk.

    python bench/serving/bench.py                       # the default run: deckhand vs KServe and MLServer (~11 min)
    python bench/serving/bench.py --peers kserve,mlserver,mlflow,drum --workers default,2   # every peer
    python bench/serving/bench.py --duration 3 --rounds 1 --payloads 1,100 --conns 16      # a smoke run
    python bench/serving/bench.py --model classifier     # a GradientBoostingClassifier instead
    python bench/serving/bench.py --memory              # RSS of one server holding 50 deployments

Every server serves the SAME scikit-learn model, saved with joblib and packaged for each server:
  --model regressor (default)  GradientBoostingRegressor(n_estimators=100) on scikit-learn's bundled diabetes
                               data (10 numeric features); every server answers predict()
  --model classifier           GradientBoostingClassifier(n_estimators=100) on the bundled breast-cancer data
                               (binary, 30 numeric features); every server answers predict_proba()
Before timing, each server's answers for every payload are checked against the model's in-process output;
a server that differs is reported as FAILED, not timed.

Each server is fed what its users send, each protocol as its own row (the same rows in every body):
  deckhand csv   `deckhand serve --package`, CSV at /predictions (what DataRobot's PPS documents and users send)
  deckhand json  the same server, pandas split-orientation JSON at /predictions
  deckhand v2    the same server, the Open Inference Protocol (FP64 tensor) at /v2/models/<name>/infer
  kserve v1      KServe's ModelServer with the model class of KServe's own sklearnserver (kserve.utils'
                 get_predict_input/get_predict_response), `{"instances": rows}` at /v1/models/<name>:predict
  kserve v2      the same model, an FP64 tensor at /v2/models/<name>/infer
  mlserver       `mlserver start` with mlserver-sklearn, an FP64 tensor (the Open Inference Protocol)
  mlflow, drum (with --peers): `mlflow models serve` (dataframe_split), DataRobot's `drum server` (CSV)
Peers run in their own venvs under $DECKHAND_CACHE_DIR/bench/<peer>, installed on first use.
Floors:
  floor-http     a bare Starlette app on uvicorn (httptools + uvloop) returning a constant body: the most any
                 Python server on this stack can do; `--workers N`
  floor-predict  the model's predict()/predict_proba() called in-process, no HTTP (calls/s; p50/p99 of one call)

Servers run with --workers (default 2: equal workers for all); each is measured with wrk at -c16 and -c1 and
with 1, 100 and 10,000-row bodies. All servers at one worker setting run at once and take turns, in --rounds
short wrk runs per cell, so load from elsewhere on the machine hits them alike. "vs kserve" is req/s divided by
the best KServe protocol's req/s at equal workers, payload and connections ("vs best peer" over every peer);
the targets are checked at the end. Every wrk run is bounded by --duration; servers run in their own process
group and are stopped by PID.
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
PEERS = ("kserve", "mlserver", "mlflow", "drum")
PEER_PACKAGES = {
    "mlflow": ["mlflow-skinny", "scikit-learn", "pandas", "cloudpickle", "fastapi", "uvicorn"],
    "drum": ["datarobot-drum", "scikit-learn"],
    "kserve": ["kserve", "scikit-learn", "joblib"],
    # uvloop 0.22+ makes asyncio.get_event_loop() raise, which kills MLServer 1.7's parallel workers
    "mlserver": ["mlserver", "mlserver-sklearn", "scikit-learn", "uvloop<0.22"],
}
TOLERANCE = 1e-6  # absolute, on the predicted value or the positive-class probability
MODEL_NAME = "model"

# Trains the benchmark model; run by each Python that needs a pickle (pickles are tied to versions).
TRAIN = textwrap.dedent(
    """
    import sys, joblib
    from sklearn import datasets, ensemble
    if sys.argv[2] == "regressor":
        x, y = datasets.load_diabetes(return_X_y=True)
        model = ensemble.GradientBoostingRegressor(n_estimators=100, random_state=0)
    else:
        x, y = datasets.load_breast_cancer(return_X_y=True)
        model = ensemble.GradientBoostingClassifier(n_estimators=100, random_state=0)
    joblib.dump(model.fit(x, y), sys.argv[1])
    """
)

FLOOR_APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    BODY = b'{"data":[{"rowId":0,"prediction":1.0}]}'
    async def predict(request):
        await request.body()
        return Response(BODY, media_type="application/json")
    app = Starlette(routes=[Route("/predictions", predict, methods=["POST"]), Route("/", predict, methods=["GET"])])
    """
)


# -- data ---------------------------------------------------------------------------------------------------
@dataclass
class Data:
    model: str  # "regressor" or "classifier"
    features: list[str]
    rows: list[list[float]]  # 100 rows from the dataset (both classes for the classifier)

    def take(self, n: int) -> list[list[float]]:
        """n rows: the sample repeated as often as needed."""
        return [self.rows[i % len(self.rows)] for i in range(n)]

    @property
    def classifier(self) -> bool:
        return self.model == "classifier"


def load_data(model: str) -> Data:
    import numpy as np
    from sklearn import datasets

    data = datasets.load_breast_cancer() if model == "classifier" else datasets.load_diabetes()
    order = np.random.default_rng(0).permutation(len(data.data))[:100]
    return Data(model, [n.replace(" ", "_") for n in data.feature_names], data.data[order].tolist())


def expected_values(model: Any, rows: list[list[float]], classifier: bool) -> list[float]:
    """What every server must answer per row: the prediction, or the positive-class probability."""
    import numpy as np

    x = np.asarray(rows, dtype=float)
    return (model.predict_proba(x)[:, 1] if classifier else model.predict(x)).tolist()


def csv_body(features: list[str], rows: list[list[float]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(features)
    writer.writerows([repr(v) for v in row] for row in rows)
    return out.getvalue()


def v2_body(rows: list[list[float]], output: str | None = None) -> str:
    """An Open Inference Protocol request: one FP64 tensor [rows, features] (and the output wanted)."""
    flat = [v for row in rows for v in row]
    shape = [len(rows), len(rows[0])]
    body: dict[str, Any] = {"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP64", "data": flat}]}
    if output:
        body["outputs"] = [{"name": output}]
    return json.dumps(body)


def v2_values(raw: bytes, n: int, classifier: bool, output: str | None = None) -> list[float]:
    """The positive-class probability or the value per row from an Open Inference Protocol response."""
    outputs = json.loads(raw)["outputs"]
    tensor = next((o for o in outputs if o["name"] == output), outputs[0]) if output else outputs[0]
    flat = tensor["data"]
    if classifier:
        return [float(flat[2 * i + 1]) for i in range(n)]
    return [float(v) for v in flat]


def python_sklearn(python: Path | str) -> str:
    out = subprocess.run(
        [str(python), "-c", "import sklearn; print(sklearn.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def model_for(python: Path | str, reference: Path, out: Path, model: str) -> str:
    """The benchmark model for this Python: the reference file itself when scikit-learn versions agree."""
    import sklearn

    theirs = python_sklearn(python)
    if theirs == sklearn.__version__:
        shutil.copyfile(reference, out)
        return ""
    subprocess.run([str(python), "-c", TRAIN, str(out), model], check=True, timeout=600)
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
    ratio: float | None = None  # vs the best peer
    vs_kserve: float | None = None  # vs the best KServe protocol


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _per_row(values: list[Any], classifier: bool) -> list[float]:
    """A list of values, or of per-class probability rows, as one float per row."""
    return [float(v[1]) if classifier else float(v) for v in values]


def deckhand_servers(package: Path, data: Data) -> list[Server]:
    """One `deckhand serve --package` per protocol (the same command each time)."""
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
        rows = json.loads(raw)["data"]
        if not data.classifier:
            return [float(row["prediction"]) for row in rows]
        return [next(float(v["value"]) for v in row["predictionValues"] if v["label"] == "1") for row in rows]

    common = {"command": command, "ready_path": "/ping", "default_workers": os.cpu_count() or 1, "peer": False}
    return [
        Server(
            "deckhand csv",
            path="/predictions",
            body=lambda rows: csv_body(data.features, rows),
            extract=extract,
            content_type="text/csv",
            note="CSV, as PPS users send",
            **common,  # type: ignore[arg-type]
        ),
        Server(
            "deckhand json",
            path="/predictions",
            body=lambda rows: json.dumps({"columns": data.features, "data": rows}),
            extract=extract,
            note="JSON split orientation",
            **common,  # type: ignore[arg-type]
        ),
        Server(
            "deckhand v2",
            path=f"/v2/models/{package.stem}/infer",
            body=lambda rows: v2_body(rows, "predict_proba" if data.classifier else None),
            extract=lambda raw, n: v2_values(raw, n, data.classifier, "predict_proba" if data.classifier else None),
            note="Open Inference Protocol, FP64 tensor",
            **common,  # type: ignore[arg-type]
        ),
    ]


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
        lambda rows: csv_body(data.features, rows),
        lambda raw, n: [],
        default_workers=1,
        content_type="text/csv",
        peer=False,
        check=False,
        note="Starlette, constant body",
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


def peer_servers(peer: str, workdir: Path, reference: Path, data: Data) -> list[Server]:
    python = peer_python(peer)
    bindir = python.parent
    home = workdir / peer
    home.mkdir(exist_ok=True)
    model = home / "model.joblib"
    retrained = model_for(python, reference, model, data.model)
    predict_fn = "predict_proba" if data.classifier else "predict"
    if peer == "mlflow":
        code = textwrap.dedent(
            f"""
            import joblib, pandas as pd, mlflow.sklearn
            from mlflow.models import infer_signature
            x = pd.DataFrame({data.rows!r}, columns={data.features!r})
            mlflow.sklearn.save_model(joblib.load({str(model)!r}), {str(home / "m")!r},
                                      signature=infer_signature(x), pyfunc_predict_fn={predict_fn!r},
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

        return [
            Server(
                "mlflow",
                mlflow_cmd,
                "/invocations",
                "/ping",
                lambda rows: json.dumps({"dataframe_split": {"columns": data.features, "data": rows}}),
                lambda raw, n: _per_row(json.loads(raw)["predictions"], data.classifier),
                default_workers=1,
                env=lambda w: _with_path(bindir),
                note=retrained or "--workers",
            )
        ]
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
                *(
                    ["--target-type", "binary", "--positive-class-label", "1", "--negative-class-label", "0"]
                    if data.classifier
                    else ["--target-type", "regression"]
                ),
                "--address",
                "127.0.0.1:{port}",
                *extra,
            ]

        def drum_extract(raw: bytes, n: int) -> list[float]:
            rows = json.loads(raw)["predictions"]
            return [float(row["1"]) for row in rows] if data.classifier else [float(v) for v in rows]

        return [
            Server(
                "drum",
                drum_cmd,
                "/predict/",
                "/",
                lambda rows: csv_body(data.features, rows),
                drum_extract,
                default_workers=1,
                content_type="text/csv",
                env=lambda w: _with_path(bindir),
                note=retrained or "--max-workers; CSV body (DRUM takes no JSON rows)",
            )
        ]
    if peer == "kserve":
        # The model class of KServe's own sklearnserver (kserve/python/sklearnserver), which is not on PyPI:
        # kserve.utils' get_predict_input/get_predict_response serve both protocols; predict_proba as its
        # PREDICT_PROBA setting does.
        script = home / "serve.py"
        script.write_text(
            textwrap.dedent(
                f"""
            import sys, joblib, kserve
            from kserve.utils.utils import get_predict_input, get_predict_response
            class SKLearnModel(kserve.Model):
                def __init__(self):
                    super().__init__({MODEL_NAME!r})
                    self._model = joblib.load({str(model)!r})
                    self.ready = True
                def predict(self, payload, headers=None):
                    instances = get_predict_input(payload)
                    result = self._model.{predict_fn}(instances)
                    return get_predict_response(payload, result, self.name)
            if __name__ == "__main__":  # workers > 1 are spawned processes that re-import this file
                kwargs = {{"workers": int(sys.argv[2])}} if len(sys.argv) > 2 and sys.argv[2].isdigit() else {{}}
                kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, **kwargs).start([SKLearnModel()])
            """
            )
        )

        # As deckhand runs: no log line per request. KServe's latency log and uvicorn's access log are on by
        # default; its own flags turn them off (they reach the worker processes through sys.argv).
        quiet = home / "logging.json"
        handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
        loggers = ("kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access")
        quiet.write_text(
            json.dumps(
                {
                    "version": 1,
                    "disable_existing_loggers": False,
                    "handlers": {"stderr": handler},
                    "loggers": {n: {"handlers": ["stderr"], "level": "WARNING", "propagate": False} for n in loggers},
                }
            )
        )

        def kserve_cmd(workers: int | None) -> list[str]:
            flags = ["--enable_latency_logging", "false", "--log_config_file", str(quiet)]
            return [str(python), str(script), "{port}", *([str(workers)] if workers else []), *flags]

        # FastAPI 0.16x warns (a UserWarning) on every request that KServe's ORJSONResponse is deprecated
        common = {
            "command": kserve_cmd,
            "ready_path": f"/v1/models/{MODEL_NAME}",
            "default_workers": 1,
            "env": lambda w: {"PYTHONWARNINGS": "ignore::UserWarning"},
        }
        return [
            Server(
                "kserve v1",
                path=f"/v1/models/{MODEL_NAME}:predict",
                body=lambda rows: json.dumps({"instances": rows}),
                extract=lambda raw, n: _per_row(json.loads(raw)["predictions"], data.classifier),
                note=retrained or "ModelServer(workers=N)",
                **common,  # type: ignore[arg-type]
            ),
            Server(
                "kserve v2",
                path=f"/v2/models/{MODEL_NAME}/infer",
                body=v2_body,
                extract=lambda raw, n: v2_values(raw, n, data.classifier),
                note=retrained or "ModelServer(workers=N)",
                **common,  # type: ignore[arg-type]
            ),
        ]
    if peer == "mlserver":
        (home / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": MODEL_NAME,
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

        return [
            Server(
                "mlserver",
                lambda w: [str(bindir / "mlserver"), "start", str(home)],
                f"/v2/models/{MODEL_NAME}/infer",
                f"/v2/models/{MODEL_NAME}/ready",
                lambda rows: v2_body(rows, predict_fn),
                lambda raw, n: v2_values(raw, n, data.classifier),
                default_workers=1,
                env=mlserver_env,
                note=retrained or "parallel_workers (inference pool)",
            )
        ]
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


# wrk hands `done` its latency histogram: `latency(i)` is the i-th distinct value (us) and its count
_DUMP_LATENCY = """
done = function(summary, latency, requests)
  local out = io.open(%s, "w")
  for i = 1, #latency do
    local value, count = latency(i)
    out:write(string.format("%%d %%d\\n", value, count))
  end
  out:close()
end
"""


def run_wrk(
    url: str, body: str, content_type: str, conns: int, duration: float, workdir: Path, histogram: bool = False
) -> dict[str, Any]:
    """wrk's req/s, p50 and p99 (ms) and errors; with `histogram`, also every latency it
    measured, as `latency_us`: [[microseconds, count], ...]."""
    script, dump = workdir / "wrk.lua", workdir / "wrk-latency.txt"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        f'wrk.headers["Content-Type"] = {json.dumps(content_type)}\n'
        + (_DUMP_LATENCY % json.dumps(str(dump)) if histogram else "")
    )
    dump.unlink(missing_ok=True)
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
    measured = {"rps": float(found[0]), "p50_ms": _ms(found[1]), "p99_ms": _ms(found[2]), "errors": errors}
    if histogram:
        measured["latency_us"] = [[int(n) for n in line.split()] for line in dump.read_text().splitlines()]
    return measured


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
                    f"  {cell.server:<14} w={cell.workers:<12} rows={n:<5} c={conns:<3} "
                    f"{cell.rps:9.0f} req/s  p50 {cell.p50_ms:7.2f}  p99 {cell.p99_ms:7.2f} ms  "
                    f"errors {cell.errors}",
                    flush=True,
                )


def predict_floor(model_path: Path, data: Data, payloads: list[int], seconds: float) -> list[Result]:
    """In-process predict()/predict_proba(): calls/s and the p50/p99 of one call, per payload size."""
    import joblib
    import numpy as np

    model = joblib.load(model_path)
    predict = model.predict_proba if data.classifier else model.predict
    results = []
    for n in payloads:
        x = np.asarray(data.take(n), dtype=float)
        times = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            t0 = time.perf_counter()
            predict(x)
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


def _best(results: list[Result], chosen: Callable[[Result], bool]) -> dict[tuple[int, int, int], float]:
    best: dict[tuple[int, int, int], float] = {}
    for r in results:
        if chosen(r) and r.rps > 0 and not r.note.startswith(("FAILED", "failed")):
            key = (r.n_workers, r.payload, r.conns)
            best[key] = max(best.get(key, 0.0), r.rps)
    return best


def add_ratios(results: list[Result]) -> None:
    """req/s over the best peer's, and over the best KServe protocol's, at equal workers, rows and conns."""
    peers = _best(results, lambda r: r.peer)
    kserve = _best(results, lambda r: r.server.startswith("kserve"))
    for r in results:
        key = (r.n_workers, r.payload, r.conns)
        if r.conns and r.rps > 0:
            r.ratio = r.rps / peers[key] if key in peers else None
            r.vs_kserve = r.rps / kserve[key] if key in kserve else None


# The goals for what users send (CSV) against KServe at equal workers, by rows per request.
GOALS = {1: 2.0, 100: 1.3, 10_000: 1.3}
TARGET_SERVER = "deckhand csv"


def targets(results: list[Result]) -> list[str]:
    """The issue's targets, checked on this run's figures."""
    lines = []
    ours = [r for r in results if r.server == TARGET_SERVER and r.rps > 0]
    floor_http = {(r.n_workers, r.payload, r.conns): r for r in results if r.server == "floor-http" and r.rps > 0}
    predict = {r.payload: r for r in results if r.server == "floor-predict"}
    for r in ours:
        where = f"workers {r.n_workers}, {r.payload}-row, -c{r.conns}"
        need = GOALS.get(r.payload)
        if r.vs_kserve is not None and need is not None and r.conns > 1:
            verdict = "met" if r.vs_kserve >= need else "MISSED"
            lines.append(f"{verdict:>6}: {r.server} req/s >= {need:g}x KServe's best ({where}): {r.vs_kserve:.2f}x")
        f = floor_http.get((r.n_workers, r.payload, r.conns))
        if r.conns == 1 and r.payload == 1 and f is not None and 1 in predict:
            limit = 1.5 * (f.p99_ms + predict[1].p50_ms)
            verdict = "met" if r.p99_ms <= limit else "MISSED"
            lines.append(
                f"{verdict:>6}: p99 <= 1.5 x (floor-http p99 {f.p99_ms:.2f} + predict p50 {predict[1].p50_ms:.2f})"
                f" = {limit:.2f} ms ({where}): {r.p99_ms:.2f} ms"
            )
    return lines


def summary(results: list[Result]) -> list[str]:
    """The issue's table: per rows and connections, deckhand's protocols against KServe's."""
    by = {(r.server, r.n_workers, r.payload, r.conns): r for r in results if r.conns}
    names = ["deckhand csv", "deckhand json", "deckhand v2", "kserve v1", "kserve v2"]
    present = [n for n in names if any(k[0] == n for k in by)]
    if not any(n.startswith("kserve") for n in present):
        return []
    head = "| workers | rows | conns | " + " | ".join(present) + " | csv / KServe | v2 / KServe v2 |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for key in sorted({k[1:] for k in by}, key=lambda k: (k[0], k[1], -k[2])):
        cells = {n: by.get((n, *key)) for n in present}
        rps = [f"{c.rps:,.0f}" if c and c.rps else "-" for c in cells.values()]
        csv_ratio = cells.get("deckhand csv")
        v2, kv2 = cells.get("deckhand v2"), cells.get("kserve v2")
        ratio1 = f"{csv_ratio.vs_kserve:.2f}x" if csv_ratio and csv_ratio.vs_kserve else "-"
        ratio2 = f"{v2.rps / kv2.rps:.2f}x" if v2 and kv2 and v2.rps and kv2.rps else "-"
        lines.append(f"| {key[0]} | {key[1]:,} | {key[2]} | " + " | ".join(rps) + f" | {ratio1} | {ratio2} |")
    return lines


def print_table(results: list[Result], args: argparse.Namespace, elapsed: float) -> None:
    load = os.getloadavg()
    print(
        f"\nload average at end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs; "
        f"wrk {args.duration:g}s per cell in {args.rounds} interleaved rounds; total run {elapsed / 60:.1f} min\n"
    )
    head = (
        f"{'server':<14} {'workers':<12} {'rows':>5} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'vs kserve':>9} {'vs best peer':>12} {'errors':>6}  note"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        vs_kserve = f"{r.vs_kserve:.2f}x" if r.vs_kserve is not None else "-"
        print(
            f"{r.server:<14} {r.workers:<12} {r.payload:>5} {r.conns or '-':>5} {r.rps:>8.0f} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {vs_kserve:>9} {ratio:>12} {r.errors:>6}  {r.note}"
        )
    table = summary(results)
    if table:
        print("\nreq/s side by side (" + " ".join(sys.argv) + "):\n")
        print("\n".join(table))
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
    parser.add_argument(
        "--peers", default="kserve,mlserver", help=f"comma list of {','.join(PEERS)}, or none (default kserve,mlserver)"
    )
    parser.add_argument("--model", choices=("regressor", "classifier"), default="regressor", help="the model served")
    parser.add_argument("--duration", type=float, default=10, help="seconds of wrk per cell (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="turns per cell; each runs duration/rounds s")
    parser.add_argument("--payloads", default="1,100,10000", help="rows per request, comma list (default 1,100,10000)")
    parser.add_argument("--conns", default="16,1", help="wrk connections, comma list (default 16,1)")
    parser.add_argument("--workers", default="2", help="comma list of 'default' and numbers (default 2)")
    parser.add_argument("--no-floors", action="store_true", help="skip floor-http and floor-predict")
    parser.add_argument("--no-deckhand", action="store_true", help="peers (and floors) only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--memory", action="store_true", help="measure RSS of one server with many deployments")
    parser.add_argument("--deployments", type=int, default=50, help="deployments for --memory (default 50)")
    args = parser.parse_args(argv)
    args.payload_list = [int(p) for p in args.payloads.split(",")]
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
    import pandas as pd

    from deckhand.packages import build_package_from

    data = load_data(args.model)
    reference = workdir / "model.joblib"
    subprocess.run([sys.executable, "-c", TRAIN, str(reference), args.model], check=True, timeout=600)
    expected = expected_values(joblib.load(reference), data.take(max(args.payload_list)), data.classifier)
    package = workdir / f"{MODEL_NAME}.dhpkg"
    build_package_from(
        reference, "sklearn", package, name=MODEL_NAME, training_frame=pd.DataFrame(data.rows, columns=data.features)
    )

    results: list[Result] = []
    servers: list[Server] = []
    if not args.no_floors:
        results.extend(predict_floor(reference, data, args.payload_list, min(3.0, args.duration)))
        servers.append(floor_server(workdir, data))
    if not args.no_deckhand:
        servers.extend(deckhand_servers(package, data))
    for peer in [p.strip() for p in args.peers.split(",") if p.strip() and p.strip() != "none"]:
        try:
            servers.extend(peer_servers(peer, workdir, reference, data))
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
