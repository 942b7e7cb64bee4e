"""``mpay demo``: the teaching demo's narration, its languages, paths, pauses and errors,
and every command of ``docs/teaching.md``."""

from __future__ import annotations

import io
import re
import shlex
import sys
from pathlib import Path

import pytest

from mpay.present import i18n
from mpay.cli.main import main
from mpay.present.demo import _des_key, des_cbc_decrypt, des_cbc_encrypt, des_search
from mpay.protocol.messages import MESSAGE_MODELS, MessageType

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))
TEACHING = ROOT / "docs" / "teaching.md"

STEP_HEADER = re.compile(r"^Step (\d+)\b")


def demo(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["demo", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def happy(key_cache) -> str:
    """The default demo's output (the happy path, English, not a terminal)."""
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out
    try:
        assert main(["demo"]) == 0
    finally:
        sys.stdout = saved
    return out.getvalue()


def air_lines(out: str, tag: str = "[air]") -> list[str]:
    return [line for line in out.splitlines() if tag in line]


def test_every_seed_step_appears_in_order_with_sender_and_recipient(happy: str) -> None:
    lines = happy.splitlines()
    steps = [(int(match.group(1)), i) for i, line in enumerate(lines) if (match := STEP_HEADER.match(line))]
    numbers = [number for number, _ in steps]
    assert numbers == sorted(numbers), "steps are announced in the seed's order"
    assert set(numbers) == set(range(1, 12))
    for _, i in steps:
        # the header (a step not taken) or the line after it names sender and recipient
        who = lines[i] if "would send it" in lines[i] else lines[i + 1]
        assert re.search(r"\w+ \(\w[\w ]*\) → \w+ \(\w[\w ]*\)", who), who
    # the happy path's own SMS, step by step
    assert "alice (customer) → shop (merchant): purchase_request" in happy
    assert "shop (merchant) → mpc (payment center): payment_request" in happy
    assert "alice (customer) → mpc (payment center): confirmation" in happy
    assert "mpc (payment center) → shop (merchant): ship_request" in happy
    assert "Step 10 · refund: not on this path" in happy
    assert "the seed's steps on this path: 1 ✓  2 ✓  3 ✓  4 ✓  5 ✓  6 ✓  7 ✓  8 ✓  9 ✓  10 -  11 ✓" in happy


def test_initialization_is_walked_through(happy: str) -> None:
    assert "Init 1 · certificates from the authority" in happy
    assert re.search(r"alice \(customer, SIM 13800138000\): RSA-2048, certificate \d+ bytes", happy)
    for header in ("Init 2 · register at the shop", "Init 3 · real-name registration", "Init 4 ·", "Init 5 ·"):
        assert header in happy


def test_the_eavesdropper_sees_sizes_and_numbers_but_never_the_content(happy: str) -> None:
    air = air_lines(happy)
    assert len([line for line in air if "bytes of ciphertext" in line]) == 22  # 9 at init, 13 in the purchase
    assert any("13800138000 → 10690000000: 860 bytes of ciphertext in 7 SMS" in line for line in air)
    assert any(re.search(r"first 16 bytes of part 1: 05 00 03 [0-9a-f]{2} 07 01 d8 60", line) for line in air)
    # the content is in the decrypted sections...
    secrets = ["SHOP-000001", "tea", "250 g tin", "Alice Wang", "West Lake", "120.00", "240.00", "shop:alice"]
    for secret in secrets:
        assert secret in happy
    card = re.search(r"card_number: (\d+)", happy).group(1)
    pin = re.search(r"pin: (\d{6})", happy).group(1)
    # ...and never on the air, not even as hex
    for line in air:
        for secret in [*secrets, card, pin]:
            assert secret not in line, (secret, line)
        for secret in ("SHOP-000001", "tea", card):
            assert secret.encode().hex() not in line.replace(" ", "")


def test_every_opened_sms_shows_the_receivers_checks_all_passed(happy: str) -> None:
    opened = happy.count("decrypted by ")
    assert opened == 22
    for check in (
        "decryption (key unwrap, AES-GCM tag): tag ok",
        "signature: PS256 ok",
        "certificate chain: certificate chain to authority ok",
        "certificate validity: valid at time",
        "revocation: not revoked",
        "signed headers: headers match",
        "sender's phone number: sent from",
        "replay window: seq",
    ):
        assert happy.count(f"✓ {check}") == opened, check
    assert "✗" not in happy.split("Balances, points and credit")[0]
    assert "REFUSED" not in happy


def test_card_details_appear_only_where_the_bank_decrypted_them(happy: str) -> None:
    lines = happy.splitlines()
    marked = [i for i, line in enumerate(lines) if "only the bank sees this" in line]
    assert len(marked) == 2  # card number and PIN of the card binding
    for i in marked:
        opener = next(line for line in reversed(lines[:i]) if "decrypted by" in line)
        assert opener.strip() == "decrypted by bank:"


def test_timers_ledger_moves_and_the_final_balances(happy: str) -> None:
    assert "timer [T+00:01:19]: alice has read the contract and decides" in happy
    assert "ledger: hold (预扣) 240.00 CNY: alice's phone-fee wallet → escrow" in happy
    assert "ledger: settle 240.00 CNY: escrow → shop's wallet; alice earns 240 points" in happy
    assert "escrow: awaiting_acceptance → settled (accepted)" in happy
    end = happy.split("Balances, points and credit")[1]
    assert "outcome of SHOP-000001: settled" in end
    assert (
        "alice (customer): phone-fee wallet 500.00 CNY → 260.00 CNY; bank card 2000.00 CNY → 2000.00 CNY;"
        " points 240; integrity points (诚信积分) 3; credit score" in end
    )
    assert "shop (merchant): account at the payment center 0.00 CNY → 240.00 CNY" in end
    assert "money still held in escrow: 0.00 CNY" in end
    assert "✓ no_overdraft: holds" in end
    assert "security rejections: none" in end
    assert "many steps: this purchase took 13 SMS messages" in end


def test_plain_output_when_not_a_terminal(happy: str) -> None:
    assert "\x1b[" not in happy


def test_chinese_uses_the_seeds_terms(capsys) -> None:
    status, out, _ = demo(capsys, "--lang", "zh")
    assert status == 0
    for term in ("移动支付中心", "预扣", "诚信积分", "顾客", "商家", "第1步", "第11步", "权威认证机构", "[空中]"):
        assert term in out, term
    assert "只有银行能看到" in out
    steps = [int(n) for n in re.findall(r"^第(\d+)步", out, flags=re.M)]
    assert steps == sorted(steps) and set(steps) == set(range(1, 12))


def test_refund_scenario_shows_the_refund_step(capsys) -> None:
    status, out, _ = demo(capsys, "--scenario", str(ROOT / "scenarios" / "refund.toml"))
    assert status == 0
    assert "Step 8 · transaction failed (goods returned)" in out
    assert "Step 9 · settle: pay the merchant: not on this path" in out
    lines = out.splitlines()
    i = lines.index(next(line for line in lines if line.startswith("Step 10 · agree to refund")))
    assert lines[i + 1].strip().startswith("shop (merchant) → mpc (payment center): refund_agreement")
    assert "ledger: refund 240.00 CNY: the hold is voided, alice's wallet gets it back" in out
    assert "outcome of SHOP-000001: refunded" in out


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_every_shipped_scenario_can_be_demonstrated(scenario: Path, capsys) -> None:
    status, out, err = demo(capsys, "--scenario", str(scenario))
    assert status == 0, err
    assert "Step 1 · purchase information" in out
    assert "the seed's steps on this path: 1 ✓" in out
    assert err == ""
    if scenario.stem == "workload":
        assert "this scenario has 1000 orders; the demo walks through the first one only" in out
    if scenario.stem == "auto_accept":
        assert "the acceptance window (10 d) lapsed: treated as succeeded (step 8)" in out
        assert "8 ✓ (lapse)" in out
    if scenario.stem == "confirm_timeout":
        assert "Step 11 · rate and reward: not reached" in out
    if scenario.stem == "top_up":
        assert "bank: 140.00 CNY from alice's card" in out


def test_step_mode_does_not_hang_at_end_of_input(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    status, out, _ = demo(capsys, "--step")
    assert status == 0
    assert out.count("press Enter") == 1  # end of input: carry on without waiting
    assert "the seed's steps on this path" in out


def test_step_mode_waits_for_each_enter(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n\n\n"))
    status, out, _ = demo(capsys, "--step")
    assert status == 0
    assert out.count("press Enter") == 4  # three Enters read, then end of input


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such file"), ("name = \n", "not valid TOML"), ('name = "x"\n', "no orders")],
)
def test_bad_scenario_exits_2_with_one_line(tmp_path: Path, capsys, content: str | None, message: str) -> None:
    path = tmp_path / "bad.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    status, out, err = demo(capsys, "--scenario", str(path))
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("mpay demo: ") and message in err


def test_every_message_and_text_has_both_languages() -> None:
    assert set(i18n.MESSAGE_NAMES) == set(MessageType)
    tables = [
        i18n.MESSAGE_NAMES, i18n.SEED_STEPS, i18n.ROLE_NAMES, i18n.CHECK_NAMES, i18n.WINDOW_LAPSES,
        i18n.PARTY_TIMERS, i18n.LEDGER_MOVES, i18n.OUTCOMES, i18n.TEXTS, i18n.DES_TEXTS,
    ]
    for table in tables:
        for key, words in table.items():
            assert set(words) == set(i18n.LANGS), key
    fields = {name for model in MESSAGE_MODELS.values() for name in model.model_fields}
    assert fields <= set(i18n.FIELD_NAMES_ZH)


# --- the INSECURE legacy-DES contrast ----------------------------------------------------------


def test_legacy_des_is_real_des() -> None:
    # The classic DES worked example: key 133457799BBCDFF1, 0123456789ABCDEF -> 85E813540F0AB405.
    key = bytes.fromhex("133457799BBCDFF1")
    ciphertext = des_cbc_encrypt(key, bytes(8), bytes.fromhex("0123456789ABCDEF"))
    assert ciphertext[:8].hex() == "85e813540f0ab405"
    assert des_cbc_decrypt(key, bytes(8), ciphertext) == bytes.fromhex("0123456789ABCDEF")


def test_legacy_des_key_search_finds_the_key() -> None:
    key56 = 0x3A5F0C12345678
    key = _des_key(key56)
    assert all(bin(byte).count("1") % 2 == 1 for byte in key)  # odd parity
    iv = bytes(range(8))
    plaintext = b"\xa3hcontract and more"
    ciphertext = des_cbc_encrypt(key, iv, plaintext)
    search = des_search(iv, ciphertext, plaintext[:8], key56 & ~0xFF, bits=8)
    assert search.tried == 256 and search.found_key == key


def test_legacy_des_section_is_marked_insecure_and_only_in_the_demo(capsys) -> None:
    status, out, _ = demo(capsys, "--legacy-des")
    assert status == 0
    section = out.split("INSECURE teaching contrast")[1]
    assert "2^56 = 72,057,594,037,927,936 keys" in section
    assert re.search(r"it tried 65536 keys in [\d.]+ s and found the key: yes, it decrypts the whole message", section)
    assert "Deep Crack" in section
    assert "legacy-des" not in (ROOT / "protocol" / "suites.py").read_text(encoding="utf-8")
    assert "legacy" not in (ROOT / "mpay" / "schema" / "scenario.py").read_text(encoding="utf-8")


# --- docs/teaching.md: every command runs, every quoted figure is what the demo prints ---------


def _teaching_doc() -> tuple[list[str], dict[str, str], list[str]]:
    """The doc's commands (``$`` lines of console blocks, then inline `mpay …`/`make …`),
    its ``file=`` blocks, and the lines of its ``text`` blocks (quoted demo output)."""
    markdown = TEACHING.read_text(encoding="utf-8")
    commands: list[str] = []
    files: dict[str, str] = {}
    quoted: list[str] = []
    for info, body in re.findall(r"^```([^\n]*)\n(.*?)^```", markdown, flags=re.M | re.S):
        words = info.split()
        target = next((word[len("file="):] for word in words if word.startswith("file=")), None)
        if target:
            files[target] = body
        elif words[:1] == ["console"]:
            commands += [line[2:].strip() for line in body.splitlines() if line.startswith("$ ")]
        elif words[:1] == ["text"]:
            quoted += [line for line in body.splitlines() if line.strip()]
    for command in re.findall(r"`((?:mpay|make) [^`]+)`", markdown):
        if command not in commands:
            commands.append(command)
    return commands, files, quoted


def test_every_command_in_the_teaching_doc_works(tmp_path: Path, monkeypatch, capsys, happy: str) -> None:
    commands, files, quoted = _teaching_doc()
    assert {"make demo", "mpay demo --step", "mpay demo --legacy-des", "mpay demo --scenario lossy.toml"} <= set(commands)
    assert "lossy.toml" in files and quoted
    for name, content in files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    outputs = {}
    for command in commands:
        argv = shlex.split(command)
        redirect = None
        if ">" in argv:
            argv, redirect = argv[: argv.index(">")], argv[argv.index(">") + 1]
        if argv == ["make", "demo"]:
            assert re.search(r"^demo:.*\n\t\$\(BIN\)/mpay demo$", makefile, flags=re.M)
            argv = ["mpay", "demo"]
        assert argv[0] == "mpay", command
        status = main(argv[1:])
        captured = capsys.readouterr()
        assert status == 0, (command, captured.err)
        outputs[command] = captured.out
        if redirect is not None:  # what the shell would write: the plain-text handout
            (tmp_path / redirect).write_text(captured.out, encoding="utf-8")
            assert "\x1b[" not in captured.out and "Step 11" in captured.out
    for line in quoted:
        assert line in happy, f"docs/teaching.md quotes {line!r}, the demo does not print it"
    lossy = outputs["mpay demo --scenario lossy.toml"]
    assert "a message of 13 SMS parts arrives whole only 77% of the time" in lossy
    assert "REFUSED by shop (merchant): unknown_certificate" in lossy and "sent but never opened" in lossy
    assert "outcome of O000001: open" in lossy


class _ClosingReader(io.StringIO):
    """An output whose reader goes away after a few lines (``mpay demo | head``)."""

    def write(self, chunk: str) -> int:
        if self.getvalue().count("\n") >= 5:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(chunk)


def test_a_reader_that_goes_away_ends_the_narration_not_the_run(key_cache) -> None:
    import asyncio

    from mpay.present.demo import DemoOptions, run_demo
    from mpay.schema.scenario import load_scenario

    out = _ClosingReader()
    status = asyncio.run(run_demo(load_scenario(ROOT / "scenarios" / "happy_path.toml"), options=DemoOptions(), out=out))
    assert status == 0
    assert out.getvalue().count("\n") == 5
