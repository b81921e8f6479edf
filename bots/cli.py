"""The `consult` command: the demo, consultations, imports, benchmarks, the database."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from adapters.terminal import TerminalSession
from bots.bootstrap import runtime
from bots.broadcasts import add_broadcast_commands, run_broadcast
from bots.channels import enabled_channels
from bots.definitions_file import read_definition
from bots.demo import seed_demo
from bots.errors import ChannelNotConfigured
from bots.exports import add_export_commands, run_export
from bots.moderation import add_moderation_commands, run_moderation
from bots.notices import add_deliver_command, run_deliver
from bots.organisers import add_organiser_commands, run_organiser
from bots.polis_import import NotAPolisConsultation, default_slug, import_polis
from bots.results import add_results_command, show_results
from bots.settings import Settings
from bots.slack import add_slack_commands, run_slack
from bots.telegram import add_telegram_commands, run_telegram
from bots.whatsapp import add_whatsapp_commands, run_whatsapp
from core.definitions import DefinitionError, upsert_consultation
from core.flow import utc_now
from core.i18n import FALLBACK, Translator, available_locales, negotiate
from core.polis import PolisFormatError, read_polis
from core.sequencing import ALGORITHMS, SAMPLE_LIMIT
from core.voting import recount_votes

USAGE_ERROR = 2
DEFAULT_BENCH_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consult", description="Run consultations inside messaging apps."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="seed the demo consultation and chat with it in this terminal"
    )
    demo.add_argument("--user", help="who you are in the demo (default: your login name)")
    demo.add_argument("--locale", help="your language hint, e.g. fr or en (default: from LANG)")
    demo.add_argument("--link", default="", help="a deep-link payload, e.g. culture__newspaper")

    consultation = commands.add_parser("consultation", help="manage consultations")
    actions = consultation.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = actions.add_parser("load", help="create or update a consultation from a YAML file")
    load.add_argument("file", type=Path)

    serve = commands.add_parser("serve", help="run the web server (webhooks, organiser API)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    serve.add_argument(
        "--no-access-log", action="store_true", help="do not log every request (busy servers)"
    )

    importer = commands.add_parser("import", help="import consultations from other platforms")
    sources = importer.add_subparsers(dest="source", required=True, metavar="SOURCE")
    polis = sources.add_parser("polis", help="import a conversation in the Polis export format")
    polis.add_argument(
        "directory",
        type=Path,
        metavar="DIR",
        help="the export: comments.csv, votes.csv or participants-votes.csv, summary.csv",
    )
    polis.add_argument(
        "--slug", help="the consultation's slug (default: DIR's name, e.g. vtaiwan-uberx)"
    )
    polis.add_argument(
        "--locale",
        default="en",
        choices=available_locales(),
        help="the language the interface speaks and the proposals are labelled with, among "
        "the catalogues in locales/; it is not detected from the texts (default: en)",
    )

    bench = commands.add_parser("bench", help="measure speed and statistical quality")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    sequencing = benchmarks.add_parser(
        "sequencing", help="compare sequencing algorithms on simulated consultations"
    )
    sequencing.add_argument(
        "--quick",
        action="store_true",
        help="a smaller run, under a minute, without the large dataset (see --large)",
    )
    sequencing.add_argument("--json", action="store_true", help="print the figures as JSON")
    sequencing.add_argument(
        "--seeds",
        type=int,
        help="how many seeds for every dataset, the large one's included (medians are "
        "reported; default: 3 with --quick, else 9, and 3 for the large dataset)",
    )
    sequencing.add_argument(
        "--large",
        action="store_true",
        help="with --quick, play the large dataset too (a full run always does): 2,000 "
        "proposals, 20,000 participants, production's bounded pool; about an hour on 2 cores "
        "with every algorithm, most of it makeorg's",
    )
    sequencing.add_argument(
        "--sample-limit",
        type=int,
        metavar="N",
        help="the sample of the large dataset's simulated pool: N proposals instead of "
        f"production's SAMPLE_LIMIT ({SAMPLE_LIMIT}); it changes the simulation only, not the "
        "selections timed at scale (those run production's next_proposals_for)",
    )
    sequencing.add_argument(
        "--jobs",
        type=int,
        help="simulations played in parallel processes (default: one per core)",
    )
    sequencing.add_argument(
        "--polis",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="also replay a Polis export (repeatable), e.g. ../shared/data/polis/vtaiwan.uberx",
    )
    sequencing.add_argument(
        "--algorithms",
        default="uniform,polis,makeorg,adaptive",
        help="comma-separated, among uniform, polis, makeorg, adaptive",
    )
    _add_postgres_option(sequencing)

    add_results_command(commands)
    add_moderation_commands(commands)
    add_organiser_commands(commands)
    add_telegram_commands(commands)
    add_whatsapp_commands(commands)
    add_slack_commands(commands)
    add_deliver_command(commands)
    add_broadcast_commands(commands)

    ingest = benchmarks.add_parser(
        "ingest", help="votes per second through the Telegram webhook, against a bare baseline"
    )
    ingest.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    ingest.add_argument("--json", action="store_true", help="print the figures as JSON")
    ingest.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes for both servers, ours and the baseline (default: 1)",
    )
    _add_postgres_option(ingest)

    flow = benchmarks.add_parser(
        "flow", help="what a vote costs the core alone (no HTTP), against a one-row transaction"
    )
    flow.add_argument("--quick", action="store_true", help="a smaller run, a few seconds")
    flow.add_argument("--json", action="store_true", help="print the figures as JSON")
    _add_postgres_option(flow)

    similarity = benchmarks.add_parser(
        "similarity",
        help="precision and recall of similar proposals on a labelled set, and the lookup's "
        "time among many accepted proposals, against reading three by id",
    )
    similarity.add_argument(
        "--proposals",
        type=int,
        default=30_000,
        help="accepted proposals the lookups search (default: 30000)",
    )
    similarity.add_argument("--lookups", type=int, default=300, help="lookups timed (default: 300)")
    similarity.add_argument("--json", action="store_true", help="print the figures as JSON")
    _add_postgres_option(similarity)

    flags = benchmarks.add_parser(
        "flags",
        help="the language flag's precision and recall on labelled texts, and what flagging "
        "adds to a submission among many pending proposals",
    )
    flags.add_argument(
        "--proposals",
        type=int,
        default=30_000,
        help="pending proposals already in the consultation (default: 30000)",
    )
    flags.add_argument(
        "--submissions", type=int, default=300, help="submissions timed (default: 300)"
    )
    flags.add_argument("--json", action="store_true", help="print the figures as JSON")
    _add_postgres_option(flags)

    brigade = benchmarks.add_parser(
        "brigade",
        help="how much a brigade of accounts pushing chosen proposals moves the top 10, with "
        "and without the trust filter",
    )
    brigade.add_argument(
        "--participants", type=int, default=3000, help="honest participants (default: 3000)"
    )
    brigade.add_argument(
        "--accounts", type=int, default=300, help="brigade accounts (default: 300)"
    )
    brigade.add_argument(
        "--targets", type=int, default=5, help="proposals the brigade pushes (default: 5)"
    )
    brigade.add_argument(
        "--proposals", type=int, default=120, help="accepted proposals (default: 120)"
    )
    brigade.add_argument("--seed", type=int, default=1, help="the random seed (default: 1)")
    brigade.add_argument("--json", action="store_true", help="print the figures as JSON")

    broadcast = benchmarks.add_parser(
        "broadcast",
        help="a broadcast to N recipients through consult deliver, over fake Telegram, WhatsApp "
        "and Slack APIs enforcing their limits: rate, 429s, duplicates, lost, memory, and the "
        "same after the delivery process is killed mid-way",
    )
    broadcast.add_argument(
        "--recipients", type=int, default=100_000, help="recipients (default: 100000)"
    )
    broadcast.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="K",
        help="multiply every platform limit by K, in the fakes and in the pacing (the shares "
        "reported are of the scaled limits; at 1, 100000 recipients take about an hour)",
    )
    broadcast.add_argument(
        "--paid", action="store_true", help="Telegram's paid broadcasts (1000 messages/s)"
    )
    broadcast.add_argument(
        "--tier-upgraded", action="store_true", help="a WhatsApp number upgraded to 1000/s"
    )
    broadcast.add_argument(
        "--no-kill", action="store_true", help="leave out the run killed and restarted mid-way"
    )
    broadcast.add_argument("--json", action="store_true", help="print the figures as JSON")
    broadcast.add_argument(
        "--postgres",
        type=_postgres_url,
        default=None,
        metavar="URL",
        help="a PostgreSQL server to measure too, if it answers (in its database "
        "consult_bench_broadcast; default: SQLite only)",
    )

    results = benchmarks.add_parser(
        "results",
        help="opinion groups and consensus: each stage's time and peak memory on a large "
        "synthetic consultation, or (--polis) our groups and consensus against Polis's",
    )
    results.add_argument(
        "--votes", type=int, default=10_000_000, help="votes generated (default: 10000000)"
    )
    results.add_argument(
        "--participants",
        type=int,
        default=2_000_000,
        help="participants generated (default: 2000000)",
    )
    results.add_argument(
        "--proposals", type=int, default=30_000, help="proposals generated (default: 30000)"
    )
    results.add_argument("--seed", type=int, default=1, help="the random seed (default: 1)")
    results.add_argument(
        "--polis",
        nargs="*",
        type=Path,
        metavar="DIR",
        help="compare with Polis on these exports instead (default: the shared conversations)",
    )
    results.add_argument("--json", action="store_true", help="print the figures as JSON")
    _add_postgres_option(results)

    add_export_commands(commands)

    db = commands.add_parser("db", help="manage the database")
    db_actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_actions.add_parser("upgrade", help="apply pending migrations")
    db_actions.add_parser(
        "recount",
        help="recount every proposal's votes from the votes (once all workers run this version)",
    )
    return parser


def _locale_from_environment() -> str | None:
    """The user's language as POSIX says: the first of LC_ALL, LC_MESSAGES, LANG that is set."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "").split(".", 1)[0]
        if value:
            return None if value in ("C", "POSIX") else value
    return None


def _organiser_translator() -> Translator:
    return Translator(negotiate(_locale_from_environment(), available_locales()) or FALLBACK)


async def _lines(interactive: bool) -> AsyncIterator[str]:
    while True:
        if interactive:
            try:
                line = await asyncio.to_thread(input, "> ")
            except EOFError:
                return
        else:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
        yield line


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    async with runtime(settings) as rt:
        report = await seed_demo(rt.sessions, settings.resolved_secret(), utc_now())
        if report.simulated_votes:
            t = _organiser_translator()
            ready = t(
                "cli.demo_ready",
                slug=report.slug,
                proposals=report.proposals,
                votes=report.simulated_votes,
            )
            print(ready, file=sys.stderr)
        interactive = sys.stdin.isatty()
        session = TerminalSession(
            rt.flow,
            lambda text: print(text, end="", flush=True),
            user_id=args.user or os.environ.get("USER") or "demo",
            locale_hint=args.locale or _locale_from_environment(),
            echo=not interactive,
        )
        await session.run(_lines(interactive), payload=args.link)
    return 0


async def load_consultation(settings: Settings, path: Path) -> int:
    spec = read_definition(path)
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        consultation, created = await upsert_consultation(session, spec, utc_now())
    msgid = "cli.consultation_created" if created else "cli.consultation_updated"
    t = _organiser_translator()
    print(t(msgid, slug=consultation.slug, status=consultation.status))
    return 0


async def upgrade_database(settings: Settings) -> int:
    async with runtime(settings):
        pass
    t = _organiser_translator()
    print(t("cli.database_ready"))
    return 0


async def recount_database(settings: Settings) -> int:
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        repaired = await recount_votes(session)
    print(_organiser_translator()("cli.votes_recounted", count=repaired))
    return 0


def _progress_bar(label: str) -> Callable[[int, int], None]:
    """A progress bar on stderr: redrawn on a terminal, a line every 10% otherwise."""
    interactive = sys.stderr.isatty()
    shown = [-1]

    def show(done: int, total: int) -> None:
        share = done / total if total else 1.0
        if interactive:
            bar = "#" * int(share * 30)
            print(f"\r{label} [{bar:<30}] {share:4.0%}", end="", file=sys.stderr, flush=True)
            if done >= total:
                print(file=sys.stderr)
        elif int(share * 10) > shown[0]:
            shown[0] = int(share * 10)
            print(f"{label} {share:.0%}", file=sys.stderr, flush=True)

    return show


async def run_import(settings: Settings, args: argparse.Namespace) -> int:
    t = _organiser_translator()
    conversation = read_polis(args.directory)
    slug = args.slug or default_slug(args.directory.resolve().name)
    async with runtime(settings) as rt:
        try:
            summary = await import_polis(
                rt.sessions,
                settings.resolved_secret(),
                conversation,
                slug,
                args.locale,
                utc_now(),
                _progress_bar(t("cli.import_progress")),
            )
        except NotAPolisConsultation as error:
            print(t("cli.import_slug_taken", slug=error.slug), file=sys.stderr)
            return USAGE_ERROR
    print(
        t(
            "cli.import_done",
            slug=summary.slug,
            created=summary.proposals_created,
            updated=summary.proposals_updated,
            participants=summary.participants,
            imported=summary.votes_imported,
            skipped=summary.votes_skipped,
        )
    )
    return 0


def run_server(args: argparse.Namespace) -> int:
    import uvicorn  # only the server needs it

    t = _organiser_translator()
    if not 0 < args.port < 65536 or args.workers < 1:
        print(t("cli.serve_bad_arguments"), file=sys.stderr)
        return USAGE_ERROR
    try:  # a half-configured channel is said here, not as a traceback from every worker
        enabled_channels(Settings())
    except ChannelNotConfigured as problem:
        print(t(problem.msgid, **problem.values), file=sys.stderr)
        return USAGE_ERROR
    # The key file is created here, once, so that the workers starting together only read it.
    Settings().resolved_secret()
    uvicorn.run(
        "bots.server:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=not args.no_access_log,
    )
    return 0


def _postgres_url(value: str) -> str | None:
    """`--postgres`: a server's URL, or None for "none" (or nothing)."""
    return None if value.strip().lower() in ("", "none") else value


def _add_postgres_option(benchmark: argparse.ArgumentParser) -> None:
    benchmark.add_argument(
        "--postgres",
        type=_postgres_url,
        default=os.environ.get("CONSULT_BENCH_POSTGRES_URL", DEFAULT_BENCH_POSTGRES),
        metavar="URL",
        help="a PostgreSQL server to measure too, if it answers (its database consult_bench "
        f"is used; default: {DEFAULT_BENCH_POSTGRES}); 'none' to skip",
    )


def run_bench(args: argparse.Namespace) -> int:
    if args.benchmark == "ingest":
        return run_ingest_bench(args)
    if args.benchmark == "similarity":
        return run_similarity_bench(args)
    if args.benchmark == "brigade":
        return run_brigade_bench(args)
    if args.benchmark == "flags":
        return run_flags_bench(args)
    if args.benchmark == "results":
        return run_results_bench(args)
    if args.benchmark == "broadcast":
        return run_broadcast_bench(args)
    if args.benchmark == "flow":
        from bench import flow  # only the benchmark needs it

        report = flow.run_flow(args.quick, args.postgres)
        return _print_report(flow.table(report), report, args.json)
    from bench import populations, sequencing  # only the benchmark needs them

    algorithms = [name.strip() for name in args.algorithms.split(",") if name.strip()]
    unknown = sorted(set(algorithms) - set(ALGORITHMS))
    from core.results.votes import usable_cores  # numpy: imported when a benchmark runs

    jobs = usable_cores() if args.jobs is None else args.jobs
    if unknown or not algorithms or (args.seeds is not None and args.seeds < 1) or jobs < 1:
        t = _organiser_translator()
        print(t("cli.bench_bad_arguments", known=", ".join(ALGORITHMS)), file=sys.stderr)
        return USAGE_ERROR
    if args.sample_limit is not None and args.sample_limit < 1:
        print(_organiser_translator()("cli.bench_bad_sample_limit"), file=sys.stderr)
        return USAGE_ERROR
    try:
        replays = [(path.name, read_polis(path)) for path in args.polis]
        extra = [populations.polis_dataset(name, conversation) for name, conversation in replays]
    except PolisFormatError as error:
        print(f"consult: {error}", file=sys.stderr)
        return USAGE_ERROR
    report = sequencing.suite(
        args.quick,
        args.seeds,
        algorithms,
        extra,
        jobs,
        args.large,
        args.sample_limit,
        args.postgres,
    )
    return _print_report(sequencing.table(report), report, args.json)


def run_similarity_bench(args: argparse.Namespace) -> int:
    from bench import similarity  # only the benchmark needs it

    if args.proposals < 1 or args.lookups < 1:
        print(_organiser_translator()("cli.similarity_bad_counts"), file=sys.stderr)
        return USAGE_ERROR
    report = similarity.run_similarity(args.proposals, args.lookups, args.postgres)
    return _print_report(similarity.table(report), report, args.json)


def run_brigade_bench(args: argparse.Namespace) -> int:
    from bench import brigade  # only the benchmark needs it

    counts = (args.participants, args.accounts, args.targets)
    if min(counts) < 1 or args.proposals < brigade.FIRST_TARGET + args.targets:
        least = brigade.FIRST_TARGET + args.targets
        print(_organiser_translator()("cli.brigade_bad_counts", least=least), file=sys.stderr)
        return USAGE_ERROR
    report = brigade.run_brigade(*counts, args.proposals, args.seed)
    return _print_report(brigade.table(report), report, args.json)


def run_results_bench(args: argparse.Namespace) -> int:
    from bench import results  # only the benchmark needs it

    if args.polis is not None:
        directories = args.polis or results.shared_conversations()
        if not directories:
            print(_organiser_translator()("cli.results_bench_no_polis"), file=sys.stderr)
            return USAGE_ERROR
        report = results.run_polis(directories)
        return _print_report(results.table(report), report, args.json)
    counts = (args.votes, args.participants, args.proposals)
    if min(counts) < 1 or args.participants > args.votes:
        print(_organiser_translator()("cli.results_bench_bad_counts"), file=sys.stderr)
        return USAGE_ERROR
    report = results.run_scale(*counts, args.postgres, args.seed)
    return _print_report(results.table(report), report, args.json)


def run_flags_bench(args: argparse.Namespace) -> int:
    from bench import flags  # only the benchmark needs it

    if args.proposals < 1 or args.submissions < 1:
        print(_organiser_translator()("cli.flags_bad_counts"), file=sys.stderr)
        return USAGE_ERROR
    report = flags.run_flags(args.proposals, args.submissions, args.postgres)
    return _print_report(flags.table(report), report, args.json)


def run_broadcast_bench(args: argparse.Namespace) -> int:
    from bench import broadcast  # only the benchmark needs it

    if args.recipients < 30 or not 0 < args.time_scale <= 1000:
        print(_organiser_translator()("cli.broadcast_bench_bad_arguments"), file=sys.stderr)
        return USAGE_ERROR
    options = broadcast.Options(
        recipients=args.recipients,
        time_scale=args.time_scale,
        paid=args.paid,
        tier_upgraded=args.tier_upgraded,
        kill=not args.no_kill,
    )
    report = broadcast.run_broadcast(options, args.postgres)
    return _print_report(broadcast.table(report), report, args.json)


def run_ingest_bench(args: argparse.Namespace) -> int:
    from bench import ingest  # only the benchmark needs it

    if args.workers < 1:
        print(_organiser_translator()("cli.ingest_bad_workers"), file=sys.stderr)
        return USAGE_ERROR
    report = ingest.run_ingest(args.quick, args.postgres, args.workers)
    return _print_report(ingest.table(report), report, args.json)


def _print_report(table: str, report: object, as_json: bool) -> int:
    """A benchmark's table; with --json, the JSON on stdout and the table on stderr."""
    if as_json:
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    t = _organiser_translator()
    try:
        settings = Settings()
    except ValidationError as error:  # the values are not repeated: they may be secrets
        for invalid in error.errors():
            name = "_".join(str(part) for part in invalid["loc"]).upper()
            print(t("cli.bad_setting", name=name, problem=invalid["msg"]), file=sys.stderr)
        return USAGE_ERROR
    try:
        if args.command == "demo":
            return asyncio.run(run_demo(settings, args))
        if args.command == "serve":
            return run_server(args)
        if args.command == "import":
            return asyncio.run(run_import(settings, args))
        if args.command == "bench":
            return run_bench(args)
        if args.command == "results":
            return asyncio.run(show_results(settings, args, t))
        if args.command == "export":
            return asyncio.run(run_export(settings, args, t))
        if args.command == "moderation":
            return asyncio.run(run_moderation(settings, args, t))
        if args.command == "organiser":
            return asyncio.run(run_organiser(settings, args, t))
        if args.command == "telegram":
            return asyncio.run(run_telegram(settings, args, t))
        if args.command == "whatsapp":
            return asyncio.run(run_whatsapp(settings, args, t))
        if args.command == "slack":
            return asyncio.run(run_slack(settings, args, t))
        if args.command == "broadcast":
            return asyncio.run(run_broadcast(settings, args, t))
        if args.command == "deliver":
            return asyncio.run(run_deliver(settings, args, t))
        if args.command == "consultation":
            return asyncio.run(load_consultation(settings, args.file))
        if args.action == "recount":
            return asyncio.run(recount_database(settings))
        return asyncio.run(upgrade_database(settings))
    except DefinitionError as error:
        print(t("cli.invalid_definition"), file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return USAGE_ERROR
    except PolisFormatError as error:
        print(f"consult: {error}", file=sys.stderr)
        return USAGE_ERROR
    except ArgumentError:
        print(t("cli.bad_database_url"), file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        # Whoever read the output stopped early (`consult ... | head`): nothing went wrong
        # here. What is still buffered goes nowhere, instead of failing again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (OperationalError, InterfaceError, OSError) as error:
        print(t("cli.database_unreachable", error=error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
