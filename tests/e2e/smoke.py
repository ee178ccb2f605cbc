"""End-to-end smoke test of the Warmline desktop app, driven over WebDriver.

Runs inside the X server and D-Bus session that `run.sh` sets up. A tiny fake
Ollama (stdlib HTTP server on a free loopback port) stands in as the upstream.
Each step has a bounded wait and a message saying what did not happen.

Phase 1, a normal launch through tauri-driver (driver -> WebKitWebDriver -> app):
  1. the window renders the status card with the listen URL;
  2. the embedded gateway answers GET /warmline/health with JSON containing "status";
  3. status arrives by push events: the page counts them, and the request counter
     on screen follows requests sent through the gateway after the first paint;
  4. a screenshot is written (screenshots/smoke.png);
  5. the window's Quit button stops the app and the gateway (the port closes).
Phase 2, the listen port already taken: the window shows the error
  (`address_in_use`) instead of the app crashing; screenshot port-taken.png.
Phase 3, the binary launched directly: it prints the same ready line as
  `warmline serve`, and SIGTERM stops it cleanly (exit 0, port closed).

Whatever happens, every process group it started (tauri-driver with
WebKitWebDriver and the app; the directly launched app) is ended before exit.
Exit status: 0 on success, 1 on a failed check, 2 on bad usage.
"""

import argparse
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.options import ArgOptions

START = time.monotonic()


class Failure(Exception):
    """A check that did not pass; the message says what was expected."""


def log(message):
    print(f"e2e [{time.monotonic() - START:6.2f}s] {message}", flush=True)


def wait_for(what, timeout, probe, interval=0.2):
    """Polls probe() until it returns a truthy value; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Failure:
            raise
        except Exception as err:  # noqa: BLE001 - reported below if it never succeeds
            last_error = err
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    raise Failure(f"timed out after {timeout}s waiting for {what}{detail}")


def http_get(url, timeout=2.0):
    """(status, body) for any HTTP answer, including 4xx/5xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=40):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:]) or "(empty)"
    except OSError:
        return "(no log)"


# --- a fake Ollama upstream ------------------------------------------------------


class FakeOllama(http.server.BaseHTTPRequestHandler):
    """Answers the few routes the smoke test touches, like Ollama would."""

    ROUTES = {
        "/": (b"Ollama is running", "text/plain; charset=utf-8"),
        "/api/version": (b'{"version":"0.0.0-e2e"}', "application/json; charset=utf-8"),
        "/api/tags": (b'{"models":[]}', "application/json; charset=utf-8"),
    }

    def _answer(self, with_body):
        body, content_type = self.ROUTES.get(
            self.path, (b'{"error":"not found"}', "application/json; charset=utf-8")
        )
        self.send_response(200 if self.path in self.ROUTES else 404)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)

    def log_message(self, *args):
        pass


def start_fake_ollama():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOllama)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- processes -------------------------------------------------------------------


def stop_group(process):
    """Ends a process group: SIGTERM, then SIGKILL after a grace period."""
    if process is None:
        return
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        pgid = process.pid  # leader already reaped; its group may live on
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
            # The leader is gone; give the rest of the group the same grace.
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                os.killpg(pgid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue


class Driver:
    """tauri-driver (plus the WebKitWebDriver and app it starts) in its own
    process group, with `env` passed down to the app."""

    def __init__(self, args, name, env):
        self.args = args
        self.port = free_port()
        self.native_port = free_port()
        self.log_path = os.path.join(args.log_dir, f"{name}-driver.log")
        self.log_file = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        native = shutil.which("WebKitWebDriver")
        if native is None:
            raise Failure("WebKitWebDriver is not on PATH (apt-get install webkit2gtk-driver)")
        self.process = subprocess.Popen(
            [
                args.tauri_driver,
                "--port", str(self.port),
                "--native-port", str(self.native_port),
                "--native-driver", native,
            ],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            wait_for(f"tauri-driver to answer :{self.port}/status", 30, self._ready)
        except Failure:
            self.stop()
            raise

    def _ready(self):
        if self.process.poll() is not None:
            raise Failure(f"tauri-driver exited with {self.process.returncode}:\n{tail(self.log_path)}")
        return http_get(f"http://127.0.0.1:{self.port}/status")[0] == 200

    def session(self):
        options = ArgOptions()
        options.set_capability("browserName", "wry")
        options.set_capability("tauri:options", {"application": os.path.abspath(self.args.app)})
        url = f"http://127.0.0.1:{self.port}"
        try:
            from selenium.webdriver.remote.client_config import ClientConfig
        except ImportError:  # selenium older than 4.26: default timeouts
            return webdriver.Remote(command_executor=url, options=options)
        config = ClientConfig(remote_server_addr=url, timeout=60)
        return webdriver.Remote(command_executor=url, options=options, client_config=config)

    def stop(self):
        stop_group(self.process)
        self.log_file.close()


def body_attr(session, name):
    return session.find_element(By.TAG_NAME, "body").get_attribute(name)


def text_of(session, element_id):
    return session.find_element(By.ID, element_id).text.strip()


def screenshot(session, path):
    # The DOM can be ahead of the pixels: let two animation frames pass so the
    # snapshot shows what the checks just read, not the previous paint.
    session.set_script_timeout(5)
    session.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "requestAnimationFrame(() => requestAnimationFrame(() => done(true)));"
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not session.get_screenshot_as_file(path):
        raise Failure(f"could not write the screenshot to {path}")
    log(f"screenshot: {path}")


def close_session(session, expect_gone=False):
    try:
        session.quit()
    except WebDriverException as err:
        if not expect_gone:
            log(f"closing the WebDriver session failed: {type(err).__name__}")


def launch(args, name, env, listen_port=None):
    """Starts tauri-driver and a WebDriver session, which starts the app.

    A new-session request that the driver chain drops without an answer (seen
    rarely, on a busy machine) is retried once on a fresh driver, after the first
    one's whole process group, including any app it started, is gone. An app
    that really fails to start fails both attempts."""
    for attempt in (1, 2):
        driver = Driver(args, f"{name}-{attempt}", env)
        try:
            return driver, driver.session()
        except Failure:
            driver.stop()
            raise
        except Exception as err:  # noqa: BLE001 - selenium and urllib3 both raise here
            print(f"--- {driver.log_path} ---\n{tail(driver.log_path)}", file=sys.stderr)
            driver.stop()
            if attempt == 2:
                raise
            log(f"new session failed ({type(err).__name__}: {err}); retrying once with a fresh driver")
            if listen_port is not None:
                wait_for(f"port {listen_port} to be free", 10, lambda: not port_open(listen_port))
    raise AssertionError("unreachable")


# --- phases ----------------------------------------------------------------------


def normal_launch(args, env, upstream):
    listen_url = f"http://127.0.0.1:{args.port}"
    log(f"launching the app through WebDriver (listen {listen_url}, upstream {upstream})")
    driver, session = launch(args, "normal", env, listen_port=args.port)
    quit_clicked = False
    try:
        try:
            # 1. The status card shows the listen URL (first paint via gateway_status).
            try:
                wait_for(f"#listen-url to read {listen_url}", 20,
                         lambda: text_of(session, "listen-url") == listen_url)
            except Failure:
                raise Failure(
                    f"status card never showed {listen_url}; page state={body_attr(session, 'data-state')!r}"
                    f" error={text_of(session, 'error-message')!r}"
                ) from None
            log(f"status card shows {listen_url}")

            # 2. The embedded gateway answers its health route.
            status, body = http_get(f"{listen_url}/warmline/health")
            if status != 200 or "status" not in json.loads(body):
                raise Failure(f"/warmline/health answered {status}: {body}")
            log(f"GET /warmline/health -> {status} {body[:80]}")

            # 3. Pushes: the page counts events, and numbers follow new traffic.
            wait_for("two pushed status events", 10,
                     lambda: int(body_attr(session, "data-pushes") or 0) >= 2)
            for path in ("/api/tags", "/api/tags", "/api/version", "/api/tags", "/api/version"):
                status, body = http_get(f"{listen_url}{path}")
                if status != 200:
                    raise Failure(f"GET {path} through the gateway answered {status}: {body}")
            wait_for("#m-requests to show the 5 proxied requests", 10,
                     lambda: text_of(session, "m-requests") == "5")
            wait_for("the upstream row to show reachable", 10,
                     lambda: "yes" in text_of(session, "upstreams"))
            log(f"pushed updates: requests=5, upstream reachable, "
                f"{body_attr(session, 'data-pushes')} events so far")

            # 4. Screenshot.
            screenshot(session, os.path.join(args.screenshots, "smoke.png"))

            # 5. Quit from the window: the app exits and the gateway stops listening.
            quit_button = session.find_element(By.ID, "quit")
            quit_clicked = True
            try:
                quit_button.click()
            except WebDriverException as err:
                # The app may exit before WebKitWebDriver answers the click itself.
                log(f"the click on Quit got no clean answer, the app went away ({type(err).__name__})")
            wait_for(f"the gateway to stop listening on {listen_url} after Quit", 20,
                     lambda: not port_open(args.port))
            log("Quit from the window stopped the gateway")
        finally:
            close_session(session, expect_gone=quit_clicked)
    except Exception:
        print(f"--- {driver.log_path} ---\n{tail(driver.log_path)}", file=sys.stderr)
        raise
    finally:
        driver.stop()


def port_taken(args, env):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    driver = None
    try:
        log(f"launching the app with its port {taken} already taken")
        driver, session = launch(args, "port-taken", {**env, "WARMLINE_LISTEN": f"127.0.0.1:{taken}"})
        try:
            wait_for("the page to report state 'failed'", 20,
                     lambda: body_attr(session, "data-state") == "failed")
            code = text_of(session, "error-code")
            if code != "address_in_use":
                raise Failure(f"expected error code address_in_use, the window shows {code!r}")
            if not session.find_element(By.ID, "error-card").is_displayed():
                raise Failure("the error card is not visible")
            log(f"the window explains: {text_of(session, 'error-message')!r}")
            screenshot(session, os.path.join(args.screenshots, "port-taken.png"))
        finally:
            close_session(session)
    except Exception:
        if driver is not None:
            print(f"--- {driver.log_path} ---\n{tail(driver.log_path)}", file=sys.stderr)
        raise
    finally:
        if driver is not None:
            driver.stop()
        blocker.close()


def direct_launch(args, env):
    """The binary on its own, as a user starts it. Under WebDriver the app's
    stdout is not passed on, so the ready line is checked here."""
    listen_url = f"http://127.0.0.1:{args.port}"
    line = f"warmline listening on {listen_url}"
    wait_for(f"port {args.port} to be free again", 10, lambda: not port_open(args.port))
    app_log = os.path.join(args.log_dir, "direct-app.log")
    with open(app_log, "w", encoding="utf-8") as err_file:
        app = subprocess.Popen(
            [args.app], stdout=subprocess.PIPE, stderr=err_file, text=True, env=env,
            start_new_session=True,
        )
        lines = []
        threading.Thread(target=lambda: lines.extend(app.stdout), daemon=True).start()
        try:
            wait_for(f"{line!r} on the app's stdout", 20,
                     lambda: any(l.strip() == line for l in lines))
            log(f"direct launch printed {line!r}")
            status, _ = http_get(f"{listen_url}/warmline/health")
            if status != 200:
                raise Failure(f"/warmline/health answered {status} after the ready line")
            app.send_signal(signal.SIGTERM)
            try:
                code = app.wait(timeout=20)
            except subprocess.TimeoutExpired:
                raise Failure("the app did not exit within 20s of SIGTERM") from None
            if code != 0:
                raise Failure(f"the app exited with {code} on SIGTERM, expected a clean 0")
            if port_open(args.port):
                raise Failure("the gateway still listens after the app exited")
            log("SIGTERM stopped the app and the gateway cleanly (exit 0)")
        except Failure:
            print(f"--- {app_log} ---\n{tail(app_log)}", file=sys.stderr)
            raise
        finally:
            stop_group(app)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True, help="the warmline-app binary")
    parser.add_argument("--port", type=int, required=True, help="the free port the app listens on")
    parser.add_argument("--tauri-driver", required=True)
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--screenshots", required=True, help="directory for the PNGs")
    args = parser.parse_args()

    if port_open(args.port):
        print(f"e2e: FAIL: port {args.port} is already taken before the app started", file=sys.stderr)
        return 1
    fake = start_fake_ollama()
    upstream = f"http://127.0.0.1:{fake.server_address[1]}"
    env = {**os.environ, "WARMLINE_LISTEN": f"127.0.0.1:{args.port}", "WARMLINE_UPSTREAMS": upstream}
    try:
        normal_launch(args, env, upstream)
        port_taken(args, env)
        direct_launch(args, env)
    except Exception as err:  # noqa: BLE001 - any error is a failed run, said in one line
        if isinstance(err, Failure):
            message = str(err)
        elif isinstance(err, WebDriverException):
            message = f"{type(err).__name__}: {err.msg or err!r}"
        else:
            message = f"{type(err).__name__}: {err}"
        print(f"e2e: FAIL: {message}", file=sys.stderr)
        return 1
    finally:
        fake.shutdown()
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
