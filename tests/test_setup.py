import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_command():
    main_job, tests = _readme_commands()[:2]
    assert main_job.startswith("scripts/setup.sh")
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == tests
