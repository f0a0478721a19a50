"""Run Argilla's real server offline, for tests: launcher.py starts this file in the server's venv.

    .venv-argilla-server/bin/python tests/argilla_server/serve.py --port 6900

Before anything from argilla_server is imported, three things are put in place:
  1. Redis: the server pings Redis at start and queues background jobs there. An in-process
     fakeredis server answers instead (the queued jobs are never run; the tests need none).
  2. Search: memory_search.py registers an in-memory engine; ARGILLA_SEARCH_ENGINE=memory selects it.
  3. Settings come from the environment that launcher.py sets (ARGILLA_HOME_PATH for the SQLite
     database, TMPDIR for the copy of the web UI the server makes at each start).
Then the database is migrated (alembic, as `argilla_server database migrate` would), the owner
user of the tests is created, and uvicorn serves the real FastAPI app with its bundled web UI.
Argilla's own CLI is not used: its click/typer versions clash in this venv.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent


def use_fake_redis() -> None:
    """Make redis.from_url (what argilla_server.jobs.queues calls) return an in-process fake."""
    import fakeredis
    import redis

    server = fakeredis.FakeServer()

    def fake_from_url(url: str, **kwargs: object) -> fakeredis.FakeRedis:
        return fakeredis.FakeRedis(server=server)

    redis.from_url = fake_from_url
    redis.Redis.from_url = staticmethod(fake_from_url)


def migrate_database() -> None:
    """Create or upgrade the SQLite database to the server's current schema."""
    from alembic import command
    from alembic.config import Config

    from argilla_server.database import ALEMBIC_CONFIG_FILE

    command.upgrade(Config(ALEMBIC_CONFIG_FILE), "head")


async def create_owner(username: str, password: str, api_key: str, workspace: str) -> None:
    """Create the owner user with a known API key and password, and its workspace (once)."""
    from sqlalchemy import select

    from argilla_server.contexts import accounts
    from argilla_server.database import AsyncSessionLocal
    from argilla_server.models import User, UserRole, Workspace

    async with AsyncSessionLocal() as db:
        if await accounts.get_user_by_username(db, username) is not None:
            return
        found = (await db.execute(select(Workspace).filter_by(name=workspace))).scalar_one_or_none()
        await User.create(
            db,
            first_name=username,
            username=username,
            role=UserRole.owner,
            api_key=api_key,
            password_hash=accounts.hash_password(password),
            workspaces=[found or Workspace(name=workspace)],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    for name in ("ARGILLA_HOME_PATH", "ARGILLA_SEARCH_ENGINE", "TEST_OWNER_USERNAME", "TEST_OWNER_PASSWORD",
                 "TEST_OWNER_API_KEY", "TEST_WORKSPACE"):
        if not os.environ.get(name):
            sys.exit(f"serve.py: {name} is not set; start the server with launcher.py, which sets it.")

    use_fake_redis()
    sys.path.insert(0, str(HERE))
    import memory_search  # noqa: F401  (registers the engine)

    migrate_database()
    asyncio.run(create_owner(os.environ["TEST_OWNER_USERNAME"], os.environ["TEST_OWNER_PASSWORD"],
                             os.environ["TEST_OWNER_API_KEY"], os.environ["TEST_WORKSPACE"]))

    import uvicorn

    from argilla_server._app import app

    # One worker process: the in-memory index lives in this process.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
