"""End-to-end test of the Warmline desktop app, driven over WebDriver.

Runs inside the X server and D-Bus session that `run.sh` sets up, with
`ollama-sim` linked as `ollama` on PATH: the app supervises it, as it would
supervise Ollama. Each step has a bounded wait and a message saying what did
not happen; screenshots of each view go to the screenshots directory.

Phase 1, a normal launch through tauri-driver (driver -> WebKitWebDriver -> app):
  1. the dashboard renders the listen URL, and the app started `ollama serve`
     (the simulator) with the tuned environment;
  2. status arrives by push events, and numbers follow traffic sent through the
     gateway after the first paint;
  3. toggling "Keep warm" for a model loads it in the simulator, pinned for good;
  4. a chat message streams a reply through the local endpoint (partial text is
     seen before the reply ends) and the reply shows its time to first token;
  5. the charts change after traffic (they start as "no traffic yet");
  6. an invalid setting is refused next to its field; a valid one is applied
     at once; start at login writes an autostart entry;
  7. Quit stops the gateway and the daemon the app started.
Phase 2, the app launched again on the same data: the setting and the warm
  model are still there.
Phase 3, no Ollama at all: the window says how to install it and offers demo
  mode, whose simulated models can be pulled (with progress) and listed.
Phase 4, the listen port already taken: the window shows the error
  (`address_in_use`) instead of the app crashing.
Phase 5, the binary launched directly: it prints the same ready line as
  `warmline serve`, a second launch hands over to it and exits, and SIGTERM
  stops it cleanly (exit 0, port closed).

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
import urllib.parse
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


def pushes(session):
    """How many warmline://status events the page has received."""
    return int(session.execute_script("return window.WL ? WL.pushes : 0") or 0)


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


class AppWindow:
    """One phase's app, launched through WebDriver: `with AppWindow(...) as window:`
    gives `window.session`. Leaving closes the session and stops the driver with
    the app it started, after printing the driver's log tail if the phase failed.
    A phase that quits the app itself sets `window.gone`, so a failure to close
    its dead session is not reported."""

    def __init__(self, args, name, env, listen_port=None):
        self.launch = (args, name, env, listen_port)
        self.gone = False
        self.driver = self.session = None

    def __enter__(self):
        args, name, env, listen_port = self.launch
        self.driver, self.session = launch(args, name, env, listen_port=listen_port)
        return self

    def __exit__(self, kind, err, tb):
        try:
            close_session(self.session, expect_gone=self.gone)
        finally:
            if kind is not None:
                print(f"--- {self.driver.log_path} ---\n{tail(self.driver.log_path)}", file=sys.stderr)
            self.driver.stop()
        return False


# --- phases ----------------------------------------------------------------------


# Warmline's routes that are open on loopback without a credential; every other
# /warmline/* route is the control plane (as `warmline::auth::Plane::of` says).
MONITORING = ("/warmline/health", "/warmline/ready", "/warmline/stats", "/warmline/history")


def admin_token():
    """The admin credential the app's gateway wrote on its first start, read at
    each call (the file appears only then). The app writes it under its
    $XDG_STATE_HOME, else $HOME/.local/state: main() passes the app this
    process's HOME and XDG_STATE_HOME unchanged (run.sh's throwaway HOME)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.environ["HOME"], ".local", "state")
    with open(os.path.join(state, "warmline", "admin-token"), encoding="utf-8") as f:
        return f.read().strip()


def is_control(url):
    path = urllib.parse.urlsplit(url).path
    return (path.startswith("/warmline/") and path not in MONITORING
            and not path.startswith("/warmline/charts/"))


def http_json(url, body=None, timeout=10.0):
    """(status, parsed JSON) for a GET, or a POST of `body`; a control route
    (settings, daemon, models, ...) gets the admin credential, as the CLI sends it."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {admin_token()}"} if is_control(url) else {}
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def nav(session, view):
    session.find_element(By.CSS_SELECTOR, f'[data-testid="nav-{view}"]').click()
    wait_for(f"the {view} view to open", 10, lambda: body_attr(session, "data-view") == view)


def svg_of(session, chart):
    return session.execute_script(
        "const box = document.querySelector(arguments[0]);"
        "return box ? box.innerHTML : '';",
        f'[data-testid="chart-{chart}"]',
    )


def model_row(session, model):
    return session.find_element(
        By.CSS_SELECTOR, f'tr[data-testid="model-row"][data-model="{model}"]'
    )


def loaded_on(upstream, model):
    status, ps = http_json(f"{upstream}/api/ps")
    return status == 200 and next(
        (m for m in ps.get("models", []) if m.get("name") == model), None
    )


def first_launch(args, env, upstream):
    listen_url = f"http://127.0.0.1:{args.port}"
    model = "llama3.2:latest"
    log(f"launching the app through WebDriver (listen {listen_url}, Ollama at {upstream})")
    with AppWindow(args, "first", env, listen_port=args.port) as window:
        session = window.session
        # 1. The dashboard shows the listen URL (first paint via app_status),
        #    and the app started the daemon with its tuned environment.
        try:
            wait_for(f"#listen-url to read {listen_url}", 30,
                     lambda: text_of(session, "listen-url") == listen_url)
        except Failure:
            raise Failure(
                f"the dashboard never showed {listen_url}; page state={body_attr(session, 'data-state')!r}"
                f" error={text_of(session, 'error-message')!r}"
            ) from None
        daemon = wait_for("the app to start Ollama (the simulator)", 30, lambda: (
            (d := http_json(f"{listen_url}/warmline/daemon")[1]).get("state") == "running" and d))
        status, counters = http_json(f"{upstream}/_sim/counters")
        if counters.get("env", {}).get("OLLAMA_NUM_PARALLEL") != "2":
            raise Failure(f"the daemon did not get the tuned environment: {counters.get('env')}")
        log(f"dashboard shows {listen_url}; Ollama started by the app (pid {daemon['pid']})")

        # 2. Pushes: the page counts events, and numbers follow new traffic.
        wait_for("two pushed status events", 10,
                 lambda: pushes(session) >= 2)
        before_charts = svg_of(session, "throughput")
        for _ in range(5):
            status, body = http_get(f"{listen_url}/api/version")
            if status != 200:
                raise Failure(f"GET /api/version through the gateway answered {status}: {body}")
        wait_for("#m-requests to count the 5 proxied requests", 10,
                 lambda: int(text_of(session, "m-requests") or 0) >= 5)
        log(f"pushed updates: {text_of(session, 'm-requests')} requests, "
            f"{pushes(session)} events so far")

        # 3. Keep warm: the toggle loads the model in the simulator, for good.
        nav(session, "models")
        wait_for(f"the {model} row", 20, lambda: model_row(session, model))
        toggle = model_row(session, model).find_element(By.CSS_SELECTOR, '[data-testid="warm-toggle"]')
        if toggle.get_attribute("aria-checked") != "false":
            raise Failure(f"{model} starts warm? aria-checked={toggle.get_attribute('aria-checked')}")
        toggle.click()
        resident = wait_for(f"the simulator to load {model}", 20, lambda: loaded_on(upstream, model))
        if not resident.get("expires_at", "").startswith(("2", "3")) or resident["expires_at"] < "2100":
            raise Failure(f"a warm model should stay loaded for good, expires_at={resident.get('expires_at')}")
        wait_for("the row to say loaded", 10, lambda: model_row(session, model).find_element(
            By.CSS_SELECTOR, '[data-testid="model-loaded"]').text.strip() == "loaded")
        wait_for("the switch to read on", 10, lambda: model_row(session, model).find_element(
            By.CSS_SELECTOR, '[data-testid="warm-toggle"]').get_attribute("aria-checked") == "true")
        wait_for("the row to say why it is warm", 10, lambda: model_row(session, model).find_element(
            By.CSS_SELECTOR, '[data-testid="model-warmth"]').text.strip() == "warm by your choice")
        log(f"Keep warm loaded {model} in the simulator (expires {resident['expires_at']})")
        screenshot(session, os.path.join(args.screenshots, "models.png"))

        # 4. Chat: a reply streams in through the local endpoint, with its TTFT.
        nav(session, "chat")
        wait_for("the chat's model list", 10, lambda: session.execute_script(
            "return [...document.querySelectorAll('#chat-model option')].some(o => o.value === arguments[0]);",
            model))
        session.execute_script(
            "const s = document.getElementById('chat-model'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('change', {bubbles: true}));", model)
        box = session.find_element(By.ID, "chat-input")
        box.click()
        box.send_keys("Why keep a model warm?")
        session.find_element(By.ID, "chat-send").click()
        partial = wait_for("partial reply text while it streams", 15, lambda: session.execute_script(
            "const m = [...document.querySelectorAll('.msg.assistant')].pop();"
            "const t = m && m.querySelector('.msg-text');"
            "return t && m.dataset.done !== 'true' && t.textContent.trim().length > 0"
            " ? t.textContent : null;"),
            interval=0.02)
        wait_for("the reply to finish", 30, lambda: session.execute_script(
            "const m = [...document.querySelectorAll('.msg.assistant')].pop();"
            "return m && m.dataset.done === 'true' && m.dataset.outcome === 'done';"))
        final = session.execute_script(
            "const m = [...document.querySelectorAll('.msg.assistant')].pop();"
            "return m.querySelector('.msg-text').textContent;")
        if len(final) <= len(partial) or not final.startswith(partial.strip()[:5]):
            raise Failure(f"the reply did not grow from {partial!r} to its end ({final!r})")
        ttft = session.execute_script(
            "const m = [...document.querySelectorAll('.msg.assistant')].pop();"
            "const t = m.querySelector('[data-testid=\"reply-ttft\"]'); return t ? t.textContent : '';")
        if not ttft.startswith("TTFT "):
            raise Failure(f"the reply does not show its time to first token: {ttft!r}")
        log(f"chat streamed a reply (partial text seen: {partial.strip()[:30]!r}...), {ttft}")
        screenshot(session, os.path.join(args.screenshots, "chat.png"))

        # 5. Charts change after traffic.
        nav(session, "dashboard")
        for i in range(40):
            http_json(f"{listen_url}/api/chat", {
                "model": model, "stream": False,
                "messages": [{"role": "user", "content": f"chart traffic {i % 8}"}],
                "options": {"temperature": 0},
            })
        wait_for("the throughput chart to draw the traffic", 20, lambda: (
            (svg := svg_of(session, "throughput")) and svg != before_charts
            and "no traffic yet" not in svg and "<svg" in svg))
        wait_for("the latency chart to draw the traffic", 20,
                 lambda: "no traffic yet" not in svg_of(session, "latency"))
        log("the charts redrew with the traffic")
        # One more round of pushes, so every tile shows the whole burst.
        time.sleep(2.5)
        screenshot(session, os.path.join(args.screenshots, "dashboard.png"))
        session.execute_script(
            "document.querySelector('[data-testid=\"chart-latency\"]').scrollIntoView();")
        screenshot(session, os.path.join(args.screenshots, "charts.png"))
        session.execute_script("window.scrollTo(0, 0);"
                               "document.querySelector('main') && document.querySelector('main').scrollTo(0, 0);")

        # 5b. Automatic warmth: a model used once, and marked warm by nobody, is
        #     kept warm by prediction; the Models panel says why, and the summary
        #     shows what warm models take of the memory budget.
        other = "qwen3:0.6b"
        status, answer = http_json(f"{listen_url}/api/generate",
                                   {"model": other, "prompt": "hello", "stream": False})
        if status != 200:
            raise Failure(f"generate with {other} answered {status}: {answer}")
        nav(session, "models")
        why = wait_for(f"{other} kept warm by prediction", 20, lambda: (
            (t := model_row(session, other).find_element(
                By.CSS_SELECTOR, '[data-testid="model-warmth"]').text.strip()).startswith("kept warm: used")
            and t))
        summary = text_of(session, "models-summary")
        if "kept by prediction" not in summary or "budget" not in summary:
            raise Failure(f"the summary does not show the prediction and the budget: {summary!r}")
        status, warmth = http_json(f"{listen_url}/warmline/warmth")
        if status != 200 or other not in warmth.get("reasons", {}) or not warmth.get("budget"):
            raise Failure(f"/warmline/warmth does not explain {other}: {status} {warmth}")
        log(f"automatic warmth: {other} shows {why!r}; {summary!r}")
        screenshot(session, os.path.join(args.screenshots, "warmth.png"))

        # 6. A setting changed in the window applies at once; an invalid one is
        #    refused with the core's message next to its field; start at login
        #    writes the desktop's autostart entry.
        nav(session, "settings")
        field = wait_for("the cache size field", 10, lambda: session.find_element(
            By.CSS_SELECTOR, '[name="cache.max_size"]'))
        field.clear()
        field.send_keys("lots")
        session.find_element(By.ID, "settings-save").click()
        refusal = wait_for("the refusal next to the field", 10, lambda: next(
            (e.text for e in session.find_elements(
                By.CSS_SELECTOR, '.field-error[data-field="cache.max_size"]')
             if e.is_displayed() and e.text.strip()), None))
        if "lots" not in refusal:
            raise Failure(f"the field's error does not quote the value: {refusal!r}")
        if http_json(f"{listen_url}/warmline/settings")[1]["cache"]["max_size"] != "256MiB":
            raise Failure("an invalid value changed the settings in force")
        log(f"an invalid size was refused: {refusal!r}")
        field.clear()
        field.send_keys("128MiB")
        autostart = session.find_element(By.CSS_SELECTOR, '[name="autostart"]')
        if autostart.is_selected():
            raise Failure("start at login is on before anyone turned it on")
        autostart.click()
        session.find_element(By.ID, "settings-save").click()
        wait_for("the settings to be saved", 15,
                 lambda: text_of(session, "settings-status").startswith("Saved"))
        shown = http_json(f"{listen_url}/warmline/settings")[1]
        if shown["cache"]["max_size"] != "128MiB":
            raise Failure(f"the gateway did not take the new cache size: {shown['cache']}")
        log(f"settings saved: {text_of(session, 'settings-status')!r}")
        # The autostart crate writes to $HOME/.config/autostart (run.sh gives a
        # throwaway HOME), whatever XDG_CONFIG_HOME says.
        entry = os.path.join(env["HOME"], ".config", "autostart", "Warmline.desktop")
        text = wait_for("the autostart entry", 10,
                        lambda: os.path.exists(entry) and open(entry, encoding="utf-8").read())
        if "--autostart" not in text:
            raise Failure(f"the autostart entry does not start hidden: {text}")
        log("start at login wrote an autostart entry that launches with --autostart")
        screenshot(session, os.path.join(args.screenshots, "settings.png"))

        # 7. Quit from the window: the gateway and the daemon it started stop.
        nav(session, "dashboard")
        quit_button = session.find_element(By.ID, "quit")
        window.gone = True  # closing the session may now fail: not worth a line
        try:
            quit_button.click()
        except WebDriverException as err:
            # The app may exit before WebKitWebDriver answers the click itself.
            log(f"the click on Quit got no clean answer, the app went away ({type(err).__name__})")
        wait_for(f"the gateway to stop listening on {listen_url} after Quit", 20,
                 lambda: not port_open(args.port))
        sim_port = int(upstream.rsplit(":", 1)[1])
        wait_for("the daemon the app started to stop with it", 20, lambda: not port_open(sim_port))
        log("Quit stopped the gateway and the daemon it started")


def second_launch(args, env, upstream):
    """The same data directory again: the setting and the warm set persisted."""
    listen_url = f"http://127.0.0.1:{args.port}"
    model = "llama3.2:latest"
    wait_for(f"port {args.port} to be free again", 10, lambda: not port_open(args.port))
    log("launching the app again on the same data")
    with AppWindow(args, "second", env, listen_port=args.port) as window:
        session = window.session
        wait_for(f"#listen-url to read {listen_url}", 30,
                 lambda: text_of(session, "listen-url") == listen_url)
        shown = http_json(f"{listen_url}/warmline/settings")[1]
        if shown["cache"]["max_size"] != "128MiB":
            raise Failure(f"the cache size did not survive a restart: {shown['cache']}")
        nav(session, "settings")
        wait_for("the form to show the saved cache size", 10, lambda: session.find_element(
            By.CSS_SELECTOR, '[name="cache.max_size"]').get_attribute("value") == "128MiB")
        wait_for(f"{model} to be loaded again (it is warm)", 30, lambda: loaded_on(upstream, model))
        models = http_json(f"{listen_url}/warmline/models")[1]
        if not any(m["name"] == model and m["warm"] for m in models):
            raise Failure(f"{model} is no longer warm after a restart: {models}")
        log("after a restart: cache size 128MiB, and the warm model loaded again")


def no_ollama(args, env):
    """No `ollama` anywhere and none answering: the window says so, offers demo
    mode, and demo mode gives models to pull and chat with."""
    path = ":".join(d for d in env["PATH"].split(":") if not os.path.exists(os.path.join(d, "ollama")))
    data = os.path.join(args.log_dir, "no-ollama")
    bare = {**env, "PATH": path, "XDG_DATA_HOME": os.path.join(data, "data"),
            "XDG_CONFIG_HOME": os.path.join(data, "config"),
            "XDG_STATE_HOME": os.path.join(data, "state"),
            "WARMLINE_UPSTREAMS": f"http://127.0.0.1:{free_port()}"}
    wait_for(f"port {args.port} to be free again", 10, lambda: not port_open(args.port))
    log("launching the app on a machine without Ollama")
    with AppWindow(args, "no-ollama", bare, listen_port=args.port) as window:
        session = window.session
        banner = wait_for("the 'Ollama is not installed' banner", 30, lambda: (
            (b := session.find_element(By.ID, "ollama-missing")).is_displayed() and b))
        if "ollama.com" not in banner.text:
            raise Failure(f"the banner does not say how to install Ollama: {banner.text!r}")
        screenshot(session, os.path.join(args.screenshots, "no-ollama.png"))
        session.find_element(By.ID, "start-demo").click()
        wait_for("demo mode", 20, lambda: session.find_element(By.ID, "demo-banner").is_displayed())
        nav(session, "models")
        wait_for("the demo's models", 20, lambda: model_row(session, "llama3.2:latest"))
        # Pull a model the demo does not have: a streamed progress, then listed.
        session.find_element(By.ID, "pull-name").send_keys("tinyllama")
        session.find_element(By.ID, "pull-start").click()
        wait_for("the pull to finish", 30,
                 lambda: text_of(session, "pull-status").startswith("Pulled tinyllama"))
        wait_for("the pulled model to be listed", 20, lambda: model_row(session, "tinyllama:latest"))
        log("no Ollama: the window said how to install it; demo mode pulled tinyllama")
        screenshot(session, os.path.join(args.screenshots, "demo.png"))


def port_taken(args, env):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    try:
        log(f"launching the app with its port {taken} already taken")
        with AppWindow(args, "port-taken", {**env, "WARMLINE_LISTEN": f"127.0.0.1:{taken}"}) as window:
            session = window.session
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
            status, body = http_get(f"{listen_url}/warmline/health")
            # 503 is the answer while no host can serve ("down"); either way JSON.
            down = status == 503 and '"status":"down"' in body
            if status != 200 and not down:
                raise Failure(f"/warmline/health answered {status} after the ready line")
            # A second launch hands over to the first (which shows its window) and exits.
            second = subprocess.Popen([args.app], stdout=subprocess.DEVNULL, stderr=err_file,
                                      env=env, start_new_session=True)
            try:
                code = second.wait(timeout=20)
            except subprocess.TimeoutExpired:
                stop_group(second)
                raise Failure("a second launch kept running beside the first") from None
            if code != 0 or app.poll() is not None:
                raise Failure(f"second launch exited {code}; first still running: {app.poll() is None}")
            log("a second launch handed over to the first and exited")
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
    parser.add_argument("--ollama-sim", required=True, help="the ollama-sim binary (run as `ollama`)")
    args = parser.parse_args()

    if port_open(args.port):
        print(f"e2e: FAIL: port {args.port} is already taken before the app started", file=sys.stderr)
        return 1
    # The simulator, linked as `ollama` on PATH, is what the app supervises.
    bin_dir = os.path.join(args.log_dir, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    os.symlink(os.path.abspath(args.ollama_sim), os.path.join(bin_dir, "ollama"))
    upstream = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "WARMLINE_LISTEN": f"127.0.0.1:{args.port}",
        "WARMLINE_UPSTREAMS": upstream,
        # The simulator's pace: a visible load and a reply that streams.
        "SIM_QUIET": "1",
        "SIM_LOAD_DELAY_MS": "600",
        "SIM_TOKEN_DELAY_MS": "40",
        "SIM_TOKENS": "24",
    }
    try:
        first_launch(args, env, upstream)
        second_launch(args, env, upstream)
        no_ollama(args, env)
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
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
