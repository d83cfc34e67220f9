"""The DJ software sources of `python -m pika.dj`: real history files written the way each program writes
them, polled between writes, as the agent does."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pika.dj.sources import SOURCES, Play, SourceError, open_source
from pika.dj.sources.follow import StartFilter
from pika.dj.sources.lines import StdinSource, parse_m3u

START = 1_700_000_000.0


def tracks(plays: list[Play]) -> list[tuple[str, str]]:
    return [(p.artist, p.title) for p in plays]


def append(path: Path, text: str, encoding: str = "utf-8") -> None:
    with path.open("a", encoding=encoding, newline="") as f:
        f.write(text)


def rewrite(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


# --- the interface -------------------------------------------------------------------------------------


def test_an_unknown_source_is_a_one_line_error_naming_the_choices():
    with pytest.raises(SourceError) as err:
        open_source("winamp", None, started_at=START, catch_up=False)
    assert "winamp" in str(err.value) and "m3u" in str(err.value) and "\n" not in str(err.value)


def test_every_source_name_opens_or_says_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in SOURCES:
        if name == "stdin":
            continue  # reads the test runner's stdin; test_stdin_reports_each_line_as_a_play covers it
        try:
            source = open_source(name, None, started_at=START, catch_up=False)
        except SourceError as err:
            assert "--path" in str(err) and "\n" not in str(err)
        else:
            assert source.name == name


@given(st.lists(st.tuples(st.booleans(), st.booleans())), st.booleans())
def test_the_start_filter_keeps_new_plays_and_on_catch_up_the_latest_old_one(flags, catch_up):
    plays = [Play("A", f"t{i}", START + (1 if new else -1)) for i, (new, _) in enumerate(flags)]
    kept = StartFilter(START, catch_up).admit(plays)
    old = [p for p in plays if p.played_at < START]
    expected = [p for p in plays if p.played_at >= START or (catch_up and old and p is old[-1])]
    assert kept == expected


# --- m3u --------------------------------------------------------------------------------------------


def test_m3u_reports_each_appended_entry_once(tmp_path):
    path = tmp_path / "set.m3u8"
    append(path, "#EXTM3U\n#EXTINF:215,Old Artist - Before The Set\n/music/old.mp3\n")
    source = open_source("m3u", path, started_at=time.time(), catch_up=False)
    assert source.poll() == []
    append(path, "#EXTINF:200,Gotan Project - Santa María\n/music/santa.mp3\n")
    append(path, "/music/Carlos Di Sarli - Bahía Blanca.flac\n")
    assert tracks(source.poll()) == [("Gotan Project", "Santa María"), ("Carlos Di Sarli", "Bahía Blanca")]
    assert source.poll() == []
    append(path, "#EXTINF:200,Gotan Project - Santa María\n/music/santa.mp3\n")
    assert tracks(source.poll()) == [("Gotan Project", "Santa María")]  # really played again


def test_m3u_catch_up_reports_what_was_playing_at_start(tmp_path):
    path = tmp_path / "set.m3u"
    append(path, "#EXTINF:1,A - One\na.mp3\n#EXTINF:1,B - Two\nb.mp3\n")
    source = open_source("m3u", path, started_at=time.time(), catch_up=True)
    assert tracks(source.poll()) == [("B", "Two")]
    assert source.poll() == []


def test_m3u_half_written_entry_waits_for_its_end(tmp_path):
    path = tmp_path / "set.m3u"
    path.write_bytes(b"")
    source = open_source("m3u", path, started_at=time.time(), catch_up=False)
    assert source.poll() == []
    append(path, "#EXTINF:1,Osvaldo Pugliese - La Yum")
    assert source.poll() == []
    append(path, "ba\n/music/yumba.mp3")  # the path line is still being written
    assert source.poll() == []
    append(path, "\n#EXTINF:1,Next - One\n")
    assert tracks(source.poll()) == [("Osvaldo Pugliese", "La Yumba")]


def test_m3u_last_line_without_newline_counts_once_it_stops_changing(tmp_path):
    path = tmp_path / "set.m3u"
    path.write_bytes(b"")
    source = open_source("m3u", path, started_at=time.time(), catch_up=False)
    source.poll()
    append(path, "/music/Juan D'Arienzo - La Cumparsita.mp3")
    assert source.poll() == []
    assert tracks(source.poll()) == [("Juan D'Arienzo", "La Cumparsita")]
    append(path, "\n")
    assert source.poll() == []


def test_m3u_unreadable_file_is_a_source_error_and_nothing_is_lost(tmp_path):
    path = tmp_path / "set.m3u"
    append(path, "#EXTM3U\n")
    source = open_source("m3u", path, started_at=time.time(), catch_up=False)
    assert source.poll() == []
    append(path, "/m/A - One.mp3\n")
    path.rename(tmp_path / "aside.m3u")
    path.mkdir()  # something unreadable where the playlist was
    with pytest.raises(SourceError) as err:
        source.poll()
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    path.rmdir()
    (tmp_path / "aside.m3u").rename(path)
    append(path, "/m/B - Two.mp3\n")
    assert tracks(source.poll()) == [("A", "One"), ("B", "Two")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_m3u_without_read_permission_says_so(tmp_path):
    path = tmp_path / "set.m3u"
    append(path, "#EXTM3U\n")
    path.chmod(0)
    with pytest.raises(SourceError, match="permission"):
        open_source("m3u", path, started_at=time.time(), catch_up=False).poll()


def test_m3u_file_created_after_start_is_all_new(tmp_path):
    path = tmp_path / "later.m3u"
    source = open_source("m3u", path, started_at=time.time(), catch_up=False)
    assert source.poll() == []
    append(path, "/m/A - One.mp3\n")
    assert tracks(source.poll()) == [("A", "One")]


def test_m3u_without_path_says_to_pass_one():
    with pytest.raises(SourceError, match="--path"):
        open_source("m3u", None, started_at=START, catch_up=False)


@given(st.lists(st.tuples(st.text(alphabet="abc XYZ", min_size=1), st.text(alphabet="def UVW", min_size=1))))
def test_m3u_extinf_entries_parse_back(pairs):
    pairs = [(a.strip(), t.strip()) for a, t in pairs if a.strip() and t.strip()]
    text = "".join(f"#EXTINF:100,{a} - {t}\n/m/{i}.mp3\n" for i, (a, t) in enumerate(pairs))
    assert tracks([p for _, p in parse_m3u(text.splitlines())]) == pairs


# --- text -------------------------------------------------------------------------------------------


def test_text_each_change_is_a_new_play(tmp_path):
    path = tmp_path / "nowplaying.txt"
    rewrite(path, "Before - The Start\n")
    source = open_source("text", path, started_at=time.time(), catch_up=False)
    assert source.poll() == []
    rewrite(path, "Di Sarli - Bahía Blanca\n")
    assert tracks(source.poll()) == [("Di Sarli", "Bahía Blanca")]
    assert source.poll() == []
    rewrite(path, "Pugliese - La Yumba\n")
    rewrite(path, "Pugliese - La Yumba\n")
    assert tracks(source.poll()) == [("Pugliese", "La Yumba")]
    rewrite(path, "Di Sarli - Bahía Blanca\n")
    assert tracks(source.poll()) == [("Di Sarli", "Bahía Blanca")]


def test_text_catch_up_reports_the_current_line(tmp_path):
    path = tmp_path / "nowplaying.txt"
    rewrite(path, "Canaro - Poema")
    source = open_source("text", path, started_at=time.time(), catch_up=True)
    assert tracks(source.poll()) == [("Canaro", "Poema")]
    assert source.poll() == []


def test_text_half_written_line_waits_until_complete(tmp_path):
    path = tmp_path / "nowplaying.txt"
    rewrite(path, "")
    source = open_source("text", path, started_at=time.time(), catch_up=False)
    source.poll()
    rewrite(path, "Troilo - Qu")
    assert source.poll() == []
    rewrite(path, "Troilo - Quejas de bandoneón\n")
    assert tracks(source.poll()) == [("Troilo", "Quejas de bandoneón")]


# --- stdin ------------------------------------------------------------------------------------------


def test_stdin_reports_each_line_as_a_play():
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, encoding="utf-8") as reader, os.fdopen(write_fd, "w", encoding="utf-8") as writer:
        source = StdinSource(reader)
        writer.write("Biagi - Quejas de bandoneón\n\nJust A Title\n")
        writer.flush()
        got: list[Play] = []
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            got += source.poll()
        assert tracks(got) == [("Biagi", "Quejas de bandoneón"), ("Unknown artist", "Just A Title")]
