"""`python -m paystream_devstack.devrun` (`make run`): the whole platform on one machine, for development.

Starts embedded Redis and PostgreSQL unless REDIS_URL / DATABASE_URL are set, applies the migrations,
runs the four services as supervised child processes and stops everything on Ctrl-C or SIGTERM.
While it runs, `<data dir>/devrun.json` names the stores (see `state.py`), so that `payctl` finds
them without any variable exported.

Variables besides the services' own (see `config.py`):
  PAYSTREAM_DATA_DIR              where the embedded servers keep their data (default `.data`)
  PAYSTREAM_DEVRUN_REDIS_PORT     preferred port of the embedded Redis (default 6380; 0 = any free)
  PAYSTREAM_DEVRUN_POSTGRES_PORT  preferred port of the embedded PostgreSQL (default 5433; 0 = any free)
  PAYSTREAM_DEVRUN_STOP_TIMEOUT   seconds the services get to stop before SIGKILL (default 10)
  PAYSTREAM_DEVRUN_COMMANDS       JSON `{"name": ["argv0", ...]}` replacing the service list (for tests)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from paystream.devrun_state import DevRunState, remove_state, write_state
from paystream.errors import SettingsError
from paystream.notifier_tokens import mint_notifier_token
from paystream_devstack.devrun.config import DevRunSettings, SeedMerchant, service_environment
from paystream_devstack.devrun.servers import DevStores, StoreUrls
from paystream_devstack.devrun.supervisor import PrefixedOutput, Supervisor, parent_death_signal

# The banner's notifier token: long enough for a day of trying things by hand.
BANNER_TOKEN_TTL_S = 86_400
PAYCTL = ".venv/bin/payctl"


def main() -> int:
    """Run until interrupted; 0 after a requested stop, 1 when start-up fails."""
    try:
        settings = DevRunSettings.from_env(os.environ)
    except SettingsError as error:
        print(f"devrun: {error}", file=sys.stderr)
        return 2
    output = PrefixedOutput(service.name for service in settings.services)
    # Until the event loop takes over, SIGTERM interrupts start-up just as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stores = DevStores(settings)
    state_path: Path | None = None
    try:
        urls = stores.start(output)
        env = service_environment(os.environ, urls.redis_url, urls.database_url)
        state = DevRunState(urls.redis_url, urls.database_url, env["JWT_SECRET"], os.getpid())
        state_path = write_state(settings.data_dir, state)
        return asyncio.run(_supervise(settings, urls, env, output, state_path))
    except KeyboardInterrupt:
        output.note("interrupted during start-up")
        return 0
    except (RuntimeError, TimeoutError, OSError, SettingsError, subprocess.CalledProcessError) as error:
        output.note(f"start-up failed: {error}")
        return 1
    finally:
        # Stopping PostgreSQL takes a moment: a second Ctrl-C must not cut it short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if state_path is not None:
            remove_state(state_path, os.getpid())
        stores.stop()
        output.note("stopped")


async def _supervise(
    settings: DevRunSettings,
    urls: StoreUrls,
    env: Mapping[str, str],
    output: PrefixedOutput,
    state_path: Path,
) -> int:
    from paystream.migrations import apply_migrations  # imported only once a database is there

    applied = await apply_migrations(urls.database_url)
    output.note(f"applied migrations: {', '.join(applied)}" if applied else "schema is up to date")

    stop, force = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            output.note("stopping now")
            force.set()
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    # Services get SIGTERM, their usual stop signal, should the supervisor die without stopping them.
    supervisor = Supervisor(settings.services, env, output, preexec_fn=parent_death_signal(signal.SIGTERM))
    supervisor.start()
    for line in banner(env, urls, state_path):
        output.note(line)
    await supervisor.run_until(stop, force, settings.stop_timeout)
    return 0


def banner(env: Mapping[str, str], urls: StoreUrls, state_path: Path | None = None) -> list[str]:
    """Where everything listens and how to log in, for the developer at the terminal."""
    merchant = SeedMerchant()
    token = mint_notifier_token(
        env["JWT_SECRET"], merchant_id=merchant.merchant_id, subject="dev-user", ttl_s=BANNER_TOKEN_TTL_S
    )
    redis_origin = "embedded" if urls.redis_embedded else "from REDIS_URL"
    postgres_origin = "embedded" if urls.postgres_embedded else "from DATABASE_URL"
    rows = [
        ("API", f"http://127.0.0.1:{env['API_PORT']}"),
        ("Dashboard", f"http://127.0.0.1:{env['API_PORT']}/dashboard (sign in with the API key and secret)"),
        ("Checkout demo", f"http://127.0.0.1:{env['API_PORT']}/demo (a shop page that embeds /checkout.js)"),
        ("Notifier", f"http://127.0.0.1:{env['NOTIFIER_PORT']}"),
        ("Redis", f"{_hide_password(urls.redis_url)} ({redis_origin})"),
        ("PostgreSQL", f"{_hide_password(urls.database_url)} ({postgres_origin})"),
        ("Merchant id", merchant.merchant_id),
        ("Merchant email", merchant.email),
        ("API key", merchant.api_key),
        ("API secret", merchant.api_secret),
        ("Webhook secret", merchant.webhook_secret),
        ("Razorpay secret", env["RAZORPAY_WEBHOOK_SECRET"]),
        ("PAYable key", env["PAYABLE_MERCHANT_KEY"]),
        ("Notifier JWT", f"{token} (merchant {merchant.merchant_id}, valid 24h)"),
        ("Another JWT", f"{PAYCTL} token --merchant {merchant.merchant_id} [--salon ID] [--ttl 1h]"),
    ]
    width = max(len(label) for label, _ in rows)
    found_by = f"payctl reads them from {state_path}" if state_path else "for payctl and your own tools"
    return [
        "Paystream is running; Ctrl-C stops it (test credentials below)",
        *(f"  {label:<{width}}  {value}" for label, value in rows),
        f"The stores, for other shells ({found_by}):",
        f"  REDIS_URL={_hide_password(urls.redis_url)}",
        f"  DATABASE_URL={_hide_password(urls.database_url)}",
    ]


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


if __name__ == "__main__":
    sys.exit(main())
