"""The command line: a thin layer over :func:`newsletter.make_app`.

Every command's help ends with an ``Example:``; user errors print one line
(no traceback) and exit 1.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__

if TYPE_CHECKING:  # the heavy modules load inside the commands, so `--help` and `--version` start fast
    from .config import Settings
    from .pipeline import App
    from .types import RunReport, SourceResult, SourceState

DEFAULT_CONFIG = "newsletter.toml"  # also config.DEFAULT_CONFIG; kept here so --help imports no pydantic


def _settings(ctx: click.Context) -> Settings:
    from .config import load_settings

    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        obj["settings"] = load_settings(obj.get("config"))
    settings: Settings = obj["settings"]
    return settings


def _clock(ctx: click.Context) -> Callable[[], datetime] | None:
    """The app's clock: the real one, unless the caller (a test) passed one in ``obj={"clock": ...}``."""
    clock: Callable[[], datetime] | None = ctx.ensure_object(dict).get("clock")
    return clock


def _now(ctx: click.Context) -> datetime:
    from datetime import UTC

    clock = _clock(ctx)
    return clock() if clock is not None else datetime.now(UTC)


def _app(ctx: click.Context, settings: Settings | None = None, *, read_only: bool = False) -> App:
    """The app for one command, on the context's clock; read-only apps take no lock and write nothing."""
    from .pipeline import make_app
    from .store import Store

    settings = settings or _settings(ctx)
    store = Store(settings.paths.data_dir, read_only=True) if read_only else None
    return make_app(settings, store=store, clock=_clock(ctx))


class _Group(click.Group):
    """Every user error, usage errors included, is one line on stderr and exit status 1.

    Our own errors and bad paths become click's ``Error: ...``; click's usage
    errors lose their three-line usage block; a closed stdout (``| head``) is
    silent.
    """

    def invoke(self, ctx: click.Context) -> Any:
        from .errors import NewsletterError

        try:
            return super().invoke(ctx)
        except NewsletterError as e:
            raise click.ClickException(str(e)) from e
        except BrokenPipeError:
            raise
        except OSError as e:  # a path the user gave: say which and why, without a traceback
            where = f" {e.filename}" if e.filename else ""
            raise click.ClickException(
                f"cannot use{where}: {e.strerror or e}; check the path and its permissions"
            ) from e

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        extra.pop("standalone_mode", None)
        try:
            with _quiet_pipe():
                code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.UsageError as e:
            command = e.ctx.command_path if e.ctx is not None else "newsletter"
            _fail(f"{e.format_message()} (see `{command} --help`)")
        except click.ClickException as e:
            _fail(e.format_message())
        except click.Abort:
            _fail("aborted")
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    click.echo(f"Error: {' '.join(message.split()) if chr(10) not in message else message}", err=True)
    sys.exit(1)


@contextmanager
def _quiet_pipe() -> Iterator[None]:
    """Stop quietly when the reader of stdout goes away (``newsletter rank ... | head -1``)."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        sys.exit(0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="newsletter")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Config file (default: ./{DEFAULT_CONFIG}; embedded defaults if absent).",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """One short, personal digest of new papers per reader.

    \b
    Example:
        newsletter demo
    """
    ctx.ensure_object(dict)["config"] = config


# -- init / demo ----------------------------------------------------------------


def _sample(name: str) -> str:
    from importlib import resources

    return (resources.files("newsletter") / "samples" / name).read_text(encoding="utf-8")


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
def init(directory: Path) -> None:
    """Write a commented newsletter.toml and a profiles/ folder with an example.

    Existing files are never overwritten.

    \b
    Example:
        newsletter init my-digest && cd my-digest && newsletter profiles check
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for target, sample in (
        (directory / DEFAULT_CONFIG, "newsletter.toml"),
        (directory / "profiles" / "example.toml", "profiles/ada.toml"),
        (directory / "sample.rss", "arxiv_cs.rss"),  # a listing to try `newsletter rank` on
    ):
        if target.exists():
            click.echo(f"kept     {target} (already exists)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_sample(sample), encoding="utf-8")
        written.append(target)
        click.echo(f"wrote    {target}")
    click.echo("Next: edit the profile, then `newsletter profiles check` and `newsletter run --now`.")


DEMO_READERS = ("ada.toml", "grace.toml", "alan.toml")


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("newsletter-demo"),
    show_default=True,
    help="Where the demo keeps its profiles, data, outbox and feeds.",
)
@click.pass_context
def demo(ctx: click.Context, directory: Path) -> None:
    """Run the whole pipeline offline on the bundled sample feeds.

    Writes three example readers' profiles (if missing), fetches the bundled
    arXiv and Hugging Face samples, ranks, renders, and delivers into an
    outbox folder of .eml files plus one RSS and one Atom feed per reader.
    Run it again: nothing is sent twice.

    \b
    Example:
        newsletter demo --dir /tmp/newsletter-demo
    """
    from .config import default_settings

    settings = default_settings(directory.resolve())
    profiles_dir = settings.paths.profiles_dir
    if not profiles_dir.exists():
        profiles_dir.mkdir(parents=True)
        for name in DEMO_READERS:
            (profiles_dir / name).write_text(_sample(f"profiles/{name}"), encoding="utf-8")
    with _app(ctx, settings) as app:
        report = app.run(force=True)
    _print_report(report, settings)


def _print_report(report: RunReport, settings: Settings) -> None:
    """What a run did, one line per source and reader, and a last line that tells the truth."""
    from .types import DeliveryStatus

    for s in report.sources:
        if s.error:
            click.echo(f"source   {s.source}: FAILED: {s.error}")
        elif s.not_modified:
            click.echo(f"source   {s.source}: unchanged (304)")
        else:
            click.echo(f"source   {s.source}: {s.new} new, {s.updated} updated, {s.unchanged} unchanged")
    for err in report.profile_errors:
        for line in err.splitlines():
            click.echo(f"profile  {line}", err=True)
    for r in report.recovered:
        click.echo(
            f"uncertain {r.reader} {r.period}: an earlier run stopped during this send; it is not resent, "
            "check the mail provider's log to see whether it went out",
            err=True,
        )
    sent = failed = 0
    for d in report.deliveries:
        if d.already:
            click.echo(f"{'already':<8} {d.reader}: {d.status.value} for {d.period}")
        elif d.status is DeliveryStatus.SENT:
            sent += 1
            where = f" -> {d.path}" if d.path else ""
            click.echo(f"sent     {d.reader}: {d.items} papers for {d.period}{where}")
        else:
            failed += d.status in (DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN, DeliveryStatus.PLANNED)
            period = f" for {d.period}" if d.period else ""
            click.echo(f"{d.status.value:<8} {d.reader}{period}: {d.detail or ''}".rstrip(": "))
    if failed:
        click.echo(
            f"{failed} digest(s) not sent (see above); fix the cause, then `newsletter resend READER` "
            "sends a failed one again"
        )
    elif report.deliveries and not sent:
        click.echo("Nothing new to send: every reader already has this period's digest, or nothing matched.")
    if report.feeds:
        click.echo(f"feeds    {len(report.feeds)} files in {settings.paths.feeds_dir}")
    if settings.delivery.backend == "outbox":
        click.echo(f"outbox   {settings.paths.outbox_dir}")


# -- fetch / run ------------------------------------------------------------------------


@cli.command()
@click.pass_context
def fetch(ctx: click.Context) -> None:
    """Fetch every source now and store new entries.

    \b
    Example:
        newsletter fetch
    """
    from .errors import NewsletterError

    settings = _settings(ctx)
    with _app(ctx, settings) as app:
        if len(settings.sources) >= PROGRESS_FROM and sys.stderr.isatty():
            with click.progressbar(length=len(settings.sources), label="fetching", file=sys.stderr) as bar:
                app.fetcher.progress = lambda *_: bar.update(1)
                results = app.fetch()
        else:
            results = app.fetch()
        after = app.store.source_states()
    for line in fetch_table(results, after):
        click.echo(line.rstrip())
    if results and all(not r.ok for r in results):
        raise NewsletterError("every source failed; see the table above")


PROGRESS_FROM = 5
"""Sources from which `newsletter fetch` shows a progress bar (on a terminal)."""


def fetch_table(results: list[SourceResult], states: dict[str, SourceState]) -> list[str]:
    """One row per source: status, counts, and why it failed or what is missing."""
    from .types import SourceState

    rows = [["source", "status", "new", "updated", "unchanged", "detail"]]
    for r in results:
        state = states.get(r.source) or SourceState(r.source)
        notes: list[str] = []
        if r.error:
            status = "FAILED"
            notes.append(str(r.error))
            if state.failures > 1:
                notes.append(f"{state.failures} failures in a row")
        elif r.not_modified:
            status = "unchanged"
            notes.append("304 Not Modified")
        else:
            status = "ok"
        if r.missed:
            notes.append(f"missed the listings of {', '.join(r.missed)} (no longer in the feed)")
        counted = not r.not_modified and (r.ok or r.new or r.updated or r.unchanged)
        counts = [str(r.new), str(r.updated), str(r.unchanged)] if counted else ["-", "-", "-"]
        rows.append([r.source, status, *counts, "; ".join(notes)])
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        numbers = [c.rjust(w) for c, w in zip(row[2:5], widths[2:5], strict=True)]
        lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), *numbers, row[5]]))
    return lines


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM (systemd, docker stop) and SIGINT set the event: no new send starts, sends in flight finish."""
    import signal

    stop = threading.Event()

    def handler(sig: int, frame: object) -> None:
        stop.set()

    if threading.current_thread() is not threading.main_thread():  # signals belong to the main thread
        yield stop
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@cli.command()
@click.option("--now", "force", is_flag=True, help="Send today's digest to every reader now, whatever their send time.")
@click.option("--no-fetch", is_flag=True, help="Deliver from what is stored, without fetching.")
@click.option("--log-json", is_flag=True, help="Log JSON lines with a run id (or NEWSLETTER_LOG_FORMAT=json).")
@click.pass_context
def run(ctx: click.Context, force: bool, no_fetch: bool, log_json: bool = False) -> None:
    """Fetch, then deliver every digest that is due (what cron calls).

    Readers whose profile file is broken are reported and skipped; the
    others still get their digest.  Progress is logged as it happens.
    SIGTERM or Ctrl-C stops it cleanly: no new send starts, sends in flight
    finish and are recorded.  Exits 1 if a profile was broken, every source
    failed, or a digest failed or is uncertain.

    \b
    Example:
        newsletter run --now
    """
    from . import logs
    from .errors import NewsletterError

    settings = _settings(ctx)
    logs.setup(log_json)
    with _stop_on_signals() as stop, _app(ctx, settings) as app:
        report = app.run(force=force, fetch=not no_fetch, stop=stop)
    logs.log_report(report)
    _print_report(report, settings)
    problems = run_problems(report)
    if problems:
        raise NewsletterError("; ".join(problems))


def run_problems(report: RunReport) -> list[str]:
    """Why a run should exit non-zero, so cron and systemd can tell a bad run from a good one."""
    from .types import DeliveryStatus

    problems = []
    if report.profile_errors:
        problems.append(f"{len(report.profile_errors)} profile file(s) are broken")
    if report.sources and all(not s.ok for s in report.sources):
        problems.append("every source failed")
    bad = [
        d for d in report.deliveries if not d.already and d.status in (DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN)
    ]
    if bad:
        problems.append(f"{len(bad)} digest(s) failed or are uncertain")
    return [p + " (see above)" for p in problems]


@cli.command()
@click.argument("reader")
@click.option("--period", help="The period to send again, e.g. 2026-11-23 or 2026-W48 (default: the latest failed).")
@click.option(
    "--uncertain",
    "allow_uncertain",
    is_flag=True,
    help="Also resend a digest recorded as uncertain (only after the mail provider's log shows it never went out).",
)
@click.pass_context
def resend(ctx: click.Context, reader: str, period: str | None, allow_uncertain: bool) -> None:
    """Send a failed digest again, now: after fixing the cause (a wrong password, a full disk).

    READER is the profile file's name without .toml.  A digest that was
    sent, or is being sent, is never sent twice; one recorded as uncertain
    is resent only with --uncertain.

    \b
    Example:
        newsletter resend example --period 2026-11-23
    """
    from .errors import NewsletterError
    from .types import DeliveryStatus

    settings = _settings(ctx)
    with _app(ctx, settings) as app:
        result = app.resend(reader, period, uncertain=allow_uncertain)
    where = f" -> {result.path}" if result.path else ""
    if result.status is DeliveryStatus.SENT:
        click.echo(f"sent     {result.reader}: {result.items} papers for {result.period}{where}")
        return
    raise NewsletterError(f"{result.reader} {result.period}: {result.status.value}: {result.detail}")


# -- rank / preview ----------------------------------------------------------------------


@cli.command("rank")
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="A reader's profile file (TOML).",
)
@click.option(
    "--entries",
    "entries_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="An RSS/Atom feed or a Hugging Face daily-papers JSON file; the kind is detected.",
)
@click.option("--json", "as_json", is_flag=True, help='Print [{"id", "title", "score", "reasons"}] as JSON.')
@click.pass_context
def rank_command(ctx: click.Context, profile_path: Path, entries_path: Path, as_json: bool) -> None:
    """Rank a feed file for one profile file, without any database.

    Seed papers are used when the file lists them; seed ids it does not
    hold are named on stderr.

    \b
    Example:
        newsletter rank --profile profiles/example.toml --entries sample.rss --json
    """
    import json

    from .pipeline import rank_file

    ranked = rank_file(profile_path, entries_path, _now(ctx))
    for paper in ranked.missing_seeds:
        click.echo(f"note     seed paper {paper} is not in {entries_path.name}, so it was not used", err=True)
    if as_json:
        rows = [
            {"id": m.entry.id, "title": m.entry.title, "score": m.score, "reasons": [r.text for r in m.reasons]}
            for m in ranked.matches
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not ranked.matches:
        click.echo(f"Nothing in {entries_path.name} matched {profile_path.name} ({ranked.entries} entries).")
    for n, m in enumerate(ranked.matches, 1):
        click.echo(f"{n:>3}. {m.score:7.2f}  {m.entry.title}")
        click.echo(f"      {m.entry.link}")
        click.echo(f"      why: {m.reason_line}")


@cli.command()
@click.argument("reader")
@click.option("--days", type=click.IntRange(1, 365), default=1, show_default=True, help="Look this many days back.")
@click.option("--open", "open_html", is_flag=True, help="Write the email as HTML and open it in a browser.")
@click.pass_context
def preview(ctx: click.Context, reader: str, days: int, open_html: bool) -> None:
    """Show the digest READER would get now, with reasons; sends and records nothing.

    READER is the profile file's name without .toml.

    \b
    Example:
        newsletter preview example --days 3 --open
    """
    settings = _settings(ctx)
    # Read-only: works while `serve` holds the data folder, and records nothing.
    with _app(ctx, settings, read_only=True) as app:
        digest = app.preview(reader, days)
        html_path = app.write_preview_html(digest) if open_html else None
    who = f"{digest.profile.name} <{digest.profile.email}>"
    click.echo(f"{who}: {len(digest.matches)} papers from the last {days} day(s)")
    for n, m in enumerate(digest.matches, 1):
        click.echo(f"{n:>3}. {m.score:7.2f}  {m.entry.title}")
        click.echo(f"      why: {m.reason_line}")
    for note in digest.notes:
        click.echo(f"note     {note}")
    if html_path is not None:
        click.echo(f"html     {html_path}")
        click.launch(str(html_path))


@cli.command()
@click.argument("reader")
@click.pass_context
def feedback(ctx: click.Context, reader: str) -> None:
    """List READER's ratings ("more like this" / "less like this") and what they do.

    The profile file's [feedback] section is the truth (edit it to take a
    rating back); the dates come from the ledger.

    \b
    Example:
        newsletter feedback example
    """
    with _app(ctx, read_only=True) as app:
        rows = app.feedback(reader)
    if not rows:
        click.echo(f"{reader} has rated no paper yet; each paper in the digest has the links for it.")
    for row in rows:
        when = f"{row.at:%Y-%m-%d}" if row.at else "by hand"
        effect = "acts as a seed paper" if row.choice == "liked" else "papers like it rank lower"
        click.echo(f"{row.choice:<9} {when:<10} {row.entry_id.removeprefix('arxiv:'):<12} {row.title}  ({effect})")


# -- serve / status ----------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--log-json", is_flag=True, help="Log JSON lines with a run id (or NEWSLETTER_LOG_FORMAT=json).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, log_json: bool) -> None:
    """Run the scheduler and the HTTP app (feeds, unsubscribe, /healthz).

    Fetches daily at schedule.fetch_at (UTC) and checks every minute which
    readers are due at their own local send time; after downtime it sends
    each missed digest once.  Stop it with SIGTERM or Ctrl-C: sends in
    flight finish and are recorded.  Put HTTPS in front (deploy/nginx).

    \b
    Example:
        newsletter serve --host 127.0.0.1 --port 8080
    """
    from . import logs
    from . import serve as service  # APScheduler and uvicorn load only here

    settings = _settings(ctx)
    logs.setup(log_json, also=("uvicorn.error", "apscheduler"))
    service.serve(settings, host=host, port=port)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show run health: sources, quiet days, skipped readers, failed and uncertain sends.

    Last fetch per source, sources failing several times in a row, days
    with no new entries, readers skipped because nothing matched, and sends
    that failed or may or may not have gone out.  Works while `serve` runs.
    Exits 1 when every source is failing.

    \b
    Example:
        newsletter status --json
    """
    import json

    from .errors import NewsletterError
    from .health import read_status, status_lines

    current = read_status(_settings(ctx), _now(ctx))  # no pipeline, no lock, no file created
    if as_json:
        click.echo(json.dumps(current.as_json(), indent=2))
    else:
        for line in status_lines(current):
            click.echo(line)
    if not current.healthy:
        raise NewsletterError("every source is failing: no new papers can arrive; see the source lines above")


# -- profiles ----------------------------------------------------------------------------


@cli.group()
def profiles() -> None:
    """Check, list and sync the reader profile files.

    \b
    Example:
        newsletter profiles check
    """


@profiles.command("check")
@click.pass_context
def profiles_check(ctx: click.Context) -> None:
    """Validate every profile file; exit 1 if any is broken.

    Each mistake is one line: the file, the line, what is wrong and a fix.

    \b
    Example:
        newsletter profiles check
    """
    from . import profiles as profile_files

    settings = _settings(ctx)
    loaded = profile_files.load_profiles(settings.paths.profiles_dir)
    for p in loaded.profiles:
        click.echo(f"ok       {p.path}")
    for e in loaded.errors:
        for line in str(e).splitlines():
            click.echo(f"error    {line}", err=True)
    click.echo(f"{len(loaded.profiles)} valid, {len(loaded.errors)} broken")
    if loaded.errors:
        sys.exit(1)


@profiles.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def profiles_list(ctx: click.Context, as_json: bool) -> None:
    """Show every valid reader: id, email, schedule, interests.

    \b
    Example:
        newsletter profiles list --json
    """
    import json

    from . import profiles as profile_files

    settings = _settings(ctx)
    loaded = profile_files.load_profiles(settings.paths.profiles_dir)
    rows = [
        {
            "id": p.id,
            "email": p.email,
            "schedule": f"{p.frequency} {p.send_at:%H:%M} {p.timezone}",
            "paused": p.paused,
            "interests": [k.text for k in p.interests.keywords] + list(p.interests.authors),
        }
        for p in loaded.profiles
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            state = " (paused)" if r["paused"] else ""
            click.echo(f"{r['id']:<16} {r['email']:<28} {r['schedule']}{state}")
    for e in loaded.errors:
        for line in str(e).splitlines():
            click.echo(f"error    {line}", err=True)


@profiles.command("sync")
@click.pass_context
def profiles_sync(ctx: click.Context) -> None:
    """Load every valid profile file into the database.

    \b
    Example:
        newsletter profiles sync
    """
    with _app(ctx) as app:
        loaded = app.load_profiles()
    click.echo(f"synced   {len(loaded.profiles)} readers")
    for e in loaded.errors:
        for line in str(e).splitlines():
            click.echo(f"error    {line}", err=True)
    if loaded.errors:
        sys.exit(1)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a profile file (for editor autocompletion).

    \b
    Example:
        newsletter schema > profile.schema.json
    """
    import json

    from . import profiles as profile_files

    click.echo(json.dumps(profile_files.schema(), indent=2))


def main() -> None:
    """Entry point of the ``newsletter`` console script."""
    cli(prog_name="newsletter")


__all__ = ["cli", "main"]
