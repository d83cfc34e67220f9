"""The DJ software sources of `python -m pika.dj`: real history files written the way each program writes
them, polled between writes, as the agent does."""

from __future__ import annotations

import html
import os
import pwd
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pika.dj.sources import SOURCES, Play, SourceError, default_paths, open_source
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


def test_default_paths_are_under_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in SOURCES:
        assert all(p.is_relative_to(tmp_path) for p in default_paths(name))
    assert default_paths("virtualdj")[0] == tmp_path / "Documents" / "VirtualDJ" / "History"


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


def test_m3u_without_read_permission_says_so():
    folder = Path(tempfile.mkdtemp(prefix="pika-perm-"))  # open to all: only the file's mode says no
    try:
        folder.chmod(0o755)
        path = folder / "set.m3u"
        append(path, "#EXTM3U\n")
        path.chmod(0)
        assert _poll_as_unprivileged(path) == (
            f"SourceError: cannot read playlist {path}: Permission denied; check the file's permissions"
        )
    finally:
        shutil.rmtree(folder)


def _poll_as_unprivileged(path: Path) -> str:
    """Poll `path` in a forked child that the file's mode shuts out: root reads any file, so a
    root child opens the source, then becomes `nobody` for the poll."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest, no trio, just the poll
        try:
            source = open_source("m3u", path, started_at=time.time(), catch_up=False)
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            try:
                source.poll()
                outcome = "no error"
            except Exception as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            os.write(write, outcome.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        outcome = pipe.read()
    os.waitpid(pid, 0)
    return outcome


def test_m3u_file_created_after_start_is_all_new_and_its_absence_is_told_meanwhile(tmp_path):
    path = tmp_path / "later.m3u"
    source = open_source("m3u", path, started_at=time.time(), catch_up=False)
    assert source.poll() == []
    with pytest.raises(SourceError, match="not found; check --path"):
        source.poll()
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


def test_text_file_written_anew_is_no_error_while_it_is_briefly_gone(tmp_path):
    path = tmp_path / "nowplaying.txt"
    rewrite(path, "A - One\n")
    source = open_source("text", path, started_at=time.time(), catch_up=False)
    source.poll()
    path.unlink()
    assert source.poll() == []
    rewrite(path, "B - Two\n")
    assert tracks(source.poll()) == [("B", "Two")]
    path.unlink()
    source.poll()
    with pytest.raises(SourceError, match="not found"):
        source.poll()


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


# --- VirtualDJ --------------------------------------------------------------------------------------


def vdj_entry(artist: str, title: str, at: float, *, remix: str = "") -> tuple[str, str]:
    """The two lines VirtualDJ appends to the day's history as a track is played."""
    tags = f"<time>21:39</time><lastplaytime>{int(at)}</lastplaytime><filesize>7340032</filesize>"
    tags += f"<artist>{artist}</artist><title>{title}</title>"
    if remix:
        tags += f"<remix>{remix}</remix>"
    tags += "<songlength>182.5</songlength>"
    return f"#EXTVDJ:{tags}\r\n", f"C:\\Music\\{artist} - {title}.mp3\r\n"


def vdj_play(history: Path, day: str, artist: str, title: str, at: float, **kw: str) -> None:
    for line in vdj_entry(artist, title, at, **kw):
        append(history / f"{day}.m3u", line)


@pytest.fixture
def vdj_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    history = tmp_path / "Documents" / "VirtualDJ" / "History"
    history.mkdir(parents=True)
    return history


def test_virtualdj_reports_plays_as_they_are_appended_in_the_usual_folder(vdj_home):
    vdj_play(vdj_home, "2026-11-30", "Old", "Yesterday", START - 86400)
    vdj_play(vdj_home, "2026-12-01", "Before", "The Start", START - 60)
    source = open_source("virtualdj", None, started_at=START, catch_up=False)
    assert source.poll() == []
    vdj_play(vdj_home, "2026-12-01", "Nick Cave & The Bad Seeds", "Hollywood", START + 10)
    vdj_play(vdj_home, "2026-12-01", "j. period", "Buddy", START + 200, remix="feat. De La Soul &amp; Q-Tip")
    assert tracks(source.poll()) == [
        ("Nick Cave & The Bad Seeds", "Hollywood"),
        ("j. period", "Buddy (feat. De La Soul & Q-Tip)"),
    ]
    assert source.poll() == []
    vdj_play(vdj_home, "2026-12-01", "Nick Cave & The Bad Seeds", "Hollywood", START + 400)
    [again] = source.poll()
    assert (again.artist, again.played_at) == ("Nick Cave & The Bad Seeds", START + 400)


def test_virtualdj_catch_up_reports_the_track_on_the_decks_at_start(vdj_home):
    vdj_play(vdj_home, "2026-12-01", "First", "Track", START - 400)
    vdj_play(vdj_home, "2026-12-01", "Playing", "Now", START - 60)
    source = open_source("virtualdj", None, started_at=START, catch_up=True)
    assert tracks(source.poll()) == [("Playing", "Now")]
    assert source.poll() == []


def test_virtualdj_catch_up_reports_the_track_playing_at_start_even_when_logged_after_it(vdj_home):
    source = open_source("virtualdj", None, started_at=START, catch_up=True)
    assert source.poll() == []
    vdj_play(vdj_home, "2026-12-01", "Playing", "At Start", START - 20)  # logged once it had played a while
    assert tracks(source.poll()) == [("Playing", "At Start")]
    vdj_play(vdj_home, "2026-12-01", "Next", "Track", START + 160)
    vdj_play(vdj_home, "2026-12-01", "Stray", "Old Entry", START - 500)
    assert tracks(source.poll()) == [("Next", "Track")]


def test_virtualdj_without_catch_up_leaves_out_the_track_playing_at_start(vdj_home):
    source = open_source("virtualdj", None, started_at=START, catch_up=False)
    assert source.poll() == []
    vdj_play(vdj_home, "2026-12-01", "Playing", "At Start", START - 20)
    assert source.poll() == []


def test_virtualdj_entry_waits_for_its_path_line(vdj_home):
    source = open_source("virtualdj", vdj_home, started_at=START, catch_up=False)
    assert source.poll() == []
    tags, path = vdj_entry("Di Sarli", "Bahía Blanca", START + 5)
    append(vdj_home / "2026-12-01.m3u", tags[:40])
    assert source.poll() == []
    append(vdj_home / "2026-12-01.m3u", tags[40:])
    assert source.poll() == []
    append(vdj_home / "2026-12-01.m3u", path)
    assert tracks(source.poll()) == [("Di Sarli", "Bahía Blanca")]


def test_virtualdj_follows_the_next_day_file_without_losing_the_last_entry_of_the_old_one(vdj_home):
    vdj_play(vdj_home, "2026-11-30", "Late", "Night", START + 1)
    source = open_source("virtualdj", None, started_at=START, catch_up=False)
    assert tracks(source.poll()) == [("Late", "Night")]
    vdj_play(vdj_home, "2026-11-30", "Just Before", "Midnight", START + 2)
    vdj_play(vdj_home, "2026-12-01", "Just After", "Midnight", START + 3)
    assert tracks(source.poll()) == [("Just Before", "Midnight"), ("Just After", "Midnight")]
    vdj_play(vdj_home, "2026-12-01", "Next", "Morning", START + 4)
    assert tracks(source.poll()) == [("Next", "Morning")]


def test_virtualdj_unreadable_next_day_file_does_not_swallow_the_last_entry_of_the_old_one(vdj_home):
    vdj_play(vdj_home, "2026-11-30", "Late", "Night", START + 1)
    source = open_source("virtualdj", None, started_at=START, catch_up=False)
    assert tracks(source.poll()) == [("Late", "Night")]
    vdj_play(vdj_home, "2026-11-30", "Just Before", "Midnight", START + 2)
    (vdj_home / "2026-12-01.m3u").mkdir()  # the new day's file, not readable yet
    with pytest.raises(SourceError):
        source.poll()
    (vdj_home / "2026-12-01.m3u").rmdir()
    vdj_play(vdj_home, "2026-12-01", "Just After", "Midnight", START + 3)
    assert tracks(source.poll()) == [("Just Before", "Midnight"), ("Just After", "Midnight")]


def test_virtualdj_takes_bpm_and_key_from_its_database(vdj_home):
    database = vdj_home.parent / "database.xml"
    database.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\r\n<VirtualDJ_Database Version="2024">\r\n'
        ' <Song FilePath="C:\\Music\\Di Sarli - Bahía Blanca.mp3" FileSize="7340032">\r\n'
        '  <Tags Author="Di Sarli" Title="Bahía Blanca" />\r\n  <Infos SongLength="182.5" />\r\n'
        '  <Scan Version="801" Bpm="0.468750" AltBpm="0.9375" Volume="1.1" Key="Am" Flag="32768" />\r\n'
        " </Song>\r\n"
        ' <Song FilePath="C:\\Music\\Other - Song.mp3">\r\n  <Tags Author="Other"',  # cut short
        encoding="utf-8",
    )
    source = open_source("virtualdj", None, started_at=START, catch_up=False)
    source.poll()
    vdj_play(vdj_home, "2026-12-01", "Di Sarli", "Bahía Blanca", START + 1)
    vdj_play(vdj_home, "2026-12-01", "Unknown", "To VirtualDJ", START + 2)
    first, second = source.poll()
    assert (first.bpm, first.key) == (128.0, "Am")
    assert (second.bpm, second.key) == (None, None)


def test_virtualdj_without_its_folder_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SourceError) as err:
        open_source("virtualdj", None, started_at=START, catch_up=False)
    message = str(err.value)
    assert "VirtualDJ" in message and "Documents/VirtualDJ/History" in message and "--path" in message


def test_virtualdj_unreadable_day_file_loses_nothing(vdj_home):
    source = open_source("virtualdj", None, started_at=START, catch_up=False)
    source.poll()
    day = vdj_home / "2026-12-01.m3u"
    vdj_play(vdj_home, "2026-12-01", "A", "One", START + 1)
    day.rename(vdj_home / "aside")
    day.mkdir()
    with pytest.raises(SourceError):
        source.poll()
    day.rmdir()
    (vdj_home / "aside").rename(day)
    vdj_play(vdj_home, "2026-12-01", "B", "Two", START + 2)
    assert tracks(source.poll()) == [("A", "One"), ("B", "Two")]


@given(st.floats(min_value=0.2, max_value=1.5))
def test_virtualdj_beat_length_becomes_bpm(seconds):
    from pika.dj.sources.virtualdj import bpm_from_vdj

    assert bpm_from_vdj(f"{seconds:.6f}") == pytest.approx(60 / float(f"{seconds:.6f}"), abs=0.01)


# --- Traktor ----------------------------------------------------------------------------------------


def traktor_nml(played: list[tuple[str, str, float, int]]) -> str:
    """A Traktor history file: the collection of the tracks played so far, then the history playlist in play
    order. `played` holds (artist, title, started at, PLAYEDPUBLIC)."""
    collection, history = [], []
    for i, (artist, title, at, public) in enumerate(played):
        local = time.localtime(at)
        packed = local.tm_year << 16 | local.tm_mon << 8 | local.tm_mday
        seconds = local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec
        file = html.escape(f"{artist} - {title}.mp3")
        artist, title = html.escape(artist), html.escape(title)
        collection.append(
            f'<ENTRY MODIFIED_DATE="2026/12/1" MODIFIED_TIME="{seconds}" TITLE="{title}" ARTIST="{artist}">'
            f'<LOCATION DIR="/:Users/:dj/:Music/:" FILE="{file}" VOLUME="Macintosh HD"'
            ' VOLUMEID="Macintosh HD">'
            f'</LOCATION><ALBUM TITLE="Album"></ALBUM><INFO BITRATE="320000" KEY="1m" PLAYCOUNT="1"></INFO>'
            f'<TEMPO BPM="{120 + i}.000000" BPM_QUALITY="100.000000"></TEMPO>'
            '<MUSICAL_KEY VALUE="21"></MUSICAL_KEY>'
            "</ENTRY>\n"
        )
        history.append(
            f'<ENTRY><PRIMARYKEY TYPE="TRACK" KEY="Macintosh HD/:Users/:dj/:Music/:{file}"></PRIMARYKEY>'
            f'<EXTENDEDDATA DECK="{i % 2}" DURATION="182.5" EXTENDEDTYPE="HistoryData"'
            f' PLAYEDPUBLIC="{public}"'
            f' STARTDATE="{packed}" STARTTIME="{seconds}"></EXTENDEDDATA></ENTRY>\n'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n<NML VERSION="19">'
        '<HEAD COMPANY="www.native-instruments.com" PROGRAM="Traktor Pro 3"></HEAD>\n'
        "<MUSICFOLDERS></MUSICFOLDERS>\n"
        f'<COLLECTION ENTRIES="{len(played)}">\n{"".join(collection)}</COLLECTION>\n'
        '<SETS ENTRIES="0"></SETS>\n'
        '<PLAYLISTS><NODE TYPE="FOLDER" NAME="$ROOT"><SUBNODES COUNT="1">'
        '<NODE TYPE="PLAYLIST" NAME="HistoryPlaylist">'
        f'<PLAYLIST ENTRIES="{len(played)}" TYPE="LIST" UUID="5c4f">\n{"".join(history)}</PLAYLIST></NODE>'
        "</SUBNODES></NODE></PLAYLISTS>\n</NML>\n"
    )


@pytest.fixture
def traktor_history(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    history = tmp_path / "Documents" / "Native Instruments" / "Traktor 3.11.1" / "History"
    history.mkdir(parents=True)
    return history


def test_traktor_reports_tracks_played_out_loud_not_the_ones_only_cued(traktor_history):
    nml = traktor_history / "history_2026y12m01d_21h00m00s.nml"
    set_so_far = [("Before", "The Start", START - 300, 1)]
    nml.write_text(traktor_nml(set_so_far), encoding="utf-8")
    source = open_source("traktor", None, started_at=START, catch_up=False)
    assert source.poll() == []
    set_so_far += [("Di Sarli", "Bahía Blanca", START + 10, 1), ("Cued", "In Headphones", START + 20, 0)]
    nml.write_text(traktor_nml(set_so_far), encoding="utf-8")
    [play] = source.poll()
    assert (play.artist, play.title, play.played_at, play.bpm, play.key) == (
        "Di Sarli",
        "Bahía Blanca",
        START + 10,
        121.0,
        "Am",
    )
    set_so_far += [("Tom & Jerry", "Cartoon", START + 30, 1), ("Di Sarli", "Bahía Blanca", START + 400, 1)]
    nml.write_text(traktor_nml(set_so_far), encoding="utf-8")
    assert tracks(source.poll()) == [("Tom & Jerry", "Cartoon"), ("Di Sarli", "Bahía Blanca")]
    assert source.poll() == []


def test_traktor_catch_up_reports_the_last_track_before_the_start(traktor_history):
    nml = traktor_history / "history_2026y12m01d_21h00m00s.nml"
    nml.write_text(
        traktor_nml([("A", "One", START - 300, 1), ("B", "Two", START - 100, 1)]), encoding="utf-8"
    )
    source = open_source("traktor", None, started_at=START, catch_up=True)
    assert tracks(source.poll()) == [("B", "Two")]


def test_traktor_half_written_file_gives_what_is_complete_then_the_rest(traktor_history):
    nml = traktor_history / "history_2026y12m01d_21h00m00s.nml"
    source = open_source("traktor", None, started_at=START, catch_up=False)
    assert source.poll() == []
    full = traktor_nml([("A", "One", START + 1, 1), ("B", "Two", START + 2, 1)])
    cut = full.rindex("<ENTRY><PRIMARYKEY") + 30  # inside the last history entry
    nml.write_text(full[:cut], encoding="utf-8")
    assert tracks(source.poll()) == [("A", "One")]
    nml.write_text(full[:100], encoding="utf-8")  # rewritten from the start, caught early
    assert source.poll() == []
    nml.write_text(full, encoding="utf-8")
    assert tracks(source.poll()) == [("B", "Two")]


def test_traktor_follows_a_new_history_file(traktor_history):
    source = open_source("traktor", None, started_at=START, catch_up=False)
    first = traktor_history / "history_2026y12m01d_21h00m00s.nml"
    first.write_text(traktor_nml([("A", "One", START + 1, 1)]), encoding="utf-8")
    assert tracks(source.poll()) == [("A", "One")]
    second = traktor_history / "history_2026y12m01d_23h10m00s.nml"  # Traktor restarted
    second.write_text(traktor_nml([("B", "Two", START + 2, 1)]), encoding="utf-8")
    assert tracks(source.poll()) == [("B", "Two")]


def test_traktor_garbage_file_is_a_source_error_and_nothing_is_lost(traktor_history):
    nml = traktor_history / "history_2026y12m01d_21h00m00s.nml"
    source = open_source("traktor", None, started_at=START, catch_up=False)
    nml.write_text(traktor_nml([("A", "One", START + 1, 1)]), encoding="utf-8")
    good = nml.read_bytes()
    for garbage in (b"\x00\xff garbage, not XML", b"garbage"):
        nml.write_bytes(garbage)
        with pytest.raises(SourceError) as err:
            source.poll()
        assert str(nml) in str(err.value) and "\n" not in str(err.value)
    nml.write_bytes(good)
    assert tracks(source.poll()) == [("A", "One")]


# --- Serato -----------------------------------------------------------------------------------------


def chunk(tag: str, payload: bytes) -> bytes:
    """One chunk of Serato's format: 4-letter tag, big-endian uint32 length, payload."""
    return tag.encode("ascii") + len(payload).to_bytes(4, "big") + payload


def field(field_id: int, value: bytes) -> bytes:
    return field_id.to_bytes(4, "big") + len(value).to_bytes(4, "big") + value


def utf16(text: str) -> bytes:
    return (text + "\0").encode("utf-16-be")


def oent(
    row: int, artist: str, title: str, *, start: float, played: bool, deck: int = 1, bpm: int = 0
) -> bytes:
    """The record Serato writes for a track on a deck (field ids as What's Now Playing documents them)."""
    adat = field(1, row.to_bytes(4, "big")) + field(2, utf16(f"/Users/dj/Music/{artist} - {title}.mp3"))
    adat += field(6, utf16(title)) + field(7, utf16(artist)) + field(51, utf16("8A"))
    if bpm:
        adat += field(15, bpm.to_bytes(4, "big"))
    adat += field(28, int(start).to_bytes(4, "big")) + field(31, deck.to_bytes(4, "big"))
    adat += field(50, b"\x01" if played else b"\x00") + field(63, utf16("Serato DJ Pro"))
    return chunk("oent", chunk("adat", adat))


SESSION_HEAD = chunk("vrsn", utf16("1.0/Serato Scratch LIVE Review")) + chunk(
    "oses", chunk("adat", field(1, (7).to_bytes(4, "big")))
)


@pytest.fixture
def serato_sessions(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    sessions = tmp_path / "Music" / "_Serato_" / "History" / "Sessions"
    sessions.mkdir(parents=True)
    return sessions


def append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_serato_reports_played_tracks_and_never_one_only_loaded_on_a_deck(serato_sessions):
    session = serato_sessions / "41.session"
    session.write_bytes(SESSION_HEAD + oent(1, "Before", "Start", start=START - 300, played=True))
    source = open_source("serato", None, started_at=START, catch_up=False)
    assert source.poll() == []
    append_bytes(session, oent(2, "Di Sarli", "Bahía Blanca", start=START + 5, played=False, deck=1, bpm=118))
    assert source.poll() == []  # loaded, not playing yet
    append_bytes(session, oent(2, "Di Sarli", "Bahía Blanca", start=START + 20, played=True, deck=1, bpm=118))
    append_bytes(session, oent(3, "Loaded", "Never Played", start=START + 30, played=False, deck=2))
    [play] = source.poll()
    assert (play.artist, play.title, play.played_at, play.bpm, play.key) == (
        "Di Sarli",
        "Bahía Blanca",
        START + 20,
        118.0,
        "8A",
    )
    append_bytes(session, oent(4, "Pugliese", "La Yumba", start=START + 200, played=True, deck=2))
    append_bytes(session, oent(5, "Di Sarli", "Bahía Blanca", start=START + 400, played=True, deck=1))
    assert tracks(source.poll()) == [("Pugliese", "La Yumba"), ("Di Sarli", "Bahía Blanca")]
    assert source.poll() == []


def test_serato_row_rewritten_in_place_is_reported_once_when_played(serato_sessions):
    session = serato_sessions / "41.session"
    session.write_bytes(SESSION_HEAD)
    source = open_source("serato", None, started_at=START, catch_up=False)
    source.poll()
    session.write_bytes(SESSION_HEAD + oent(1, "A", "One", start=START + 1, played=False))
    assert source.poll() == []
    session.write_bytes(SESSION_HEAD + oent(1, "A", "One", start=START + 1, played=True))
    assert tracks(source.poll()) == [("A", "One")]
    session.write_bytes(SESSION_HEAD + oent(1, "A", "One", start=START + 1, played=True) + b"oent\x00")
    assert source.poll() == []


def test_serato_catch_up_reports_the_last_track_played_before_the_start(serato_sessions):
    session = serato_sessions / "41.session"
    session.write_bytes(
        SESSION_HEAD
        + oent(1, "A", "One", start=START - 400, played=True)
        + oent(2, "B", "Two", start=START - 100, played=True)
        + oent(3, "C", "Loaded", start=START - 50, played=False)
    )
    source = open_source("serato", None, started_at=START, catch_up=True)
    assert tracks(source.poll()) == [("B", "Two")]


def test_serato_chunk_cut_short_waits_for_the_rest(serato_sessions):
    session = serato_sessions / "41.session"
    session.write_bytes(SESSION_HEAD)
    source = open_source("serato", None, started_at=START, catch_up=False)
    source.poll()
    record = oent(1, "A", "One", start=START + 1, played=True) + oent(
        2, "B", "Two", start=START + 2, played=True
    )
    cut = len(record) // 2 + 7
    append_bytes(session, record[:cut])
    assert tracks(source.poll()) == [("A", "One")]
    append_bytes(session, record[cut:])
    assert tracks(source.poll()) == [("B", "Two")]


def test_serato_follows_the_session_started_next(serato_sessions):
    (serato_sessions / "9.session").write_bytes(
        SESSION_HEAD + oent(1, "A", "One", start=START + 1, played=True)
    )
    source = open_source("serato", None, started_at=START, catch_up=False)
    assert tracks(source.poll()) == [("A", "One")]
    (serato_sessions / "10.session").write_bytes(
        SESSION_HEAD + oent(1, "B", "Two", start=START + 2, played=True)
    )
    assert tracks(source.poll()) == [("B", "Two")]


def test_serato_garbage_session_is_a_source_error_and_nothing_is_lost(serato_sessions):
    session = serato_sessions / "41.session"
    session.write_bytes(SESSION_HEAD)
    source = open_source("serato", None, started_at=START, catch_up=False)
    source.poll()
    good = SESSION_HEAD + oent(1, "A", "One", start=START + 1, played=True)
    session.write_bytes(b"PK\x03\x04 this is a zip file, not a session")
    with pytest.raises(SourceError) as err:
        source.poll()
    assert str(session) in str(err.value) and "\n" not in str(err.value)
    session.write_bytes(good)
    assert tracks(source.poll()) == [("A", "One")]


chunk_tags = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=4, max_size=4)


@given(st.lists(st.tuples(chunk_tags, st.binary(max_size=40)), max_size=8), st.data())
def test_serato_chunks_round_trip_and_a_cut_gives_the_complete_ones(parts, data):
    from pika.dj.sources.serato import chunks

    encoded = b"".join(chunk(tag, payload) for tag, payload in parts)
    assert chunks(encoded) == parts
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded)))
    ends = [sum(8 + len(p) for _, p in parts[: i + 1]) for i in range(len(parts))]
    assert chunks(encoded[:cut]) == parts[: sum(end <= cut for end in ends)]


@given(st.dictionaries(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=30), max_size=10))
def test_serato_fields_round_trip(record):
    from pika.dj.sources.serato import fields

    assert fields(b"".join(field(i, v) for i, v in record.items())) == record


# --- Mixxx ------------------------------------------------------------------------------------------

# The tables Mixxx's schema.xml creates, in the columns it has (library trimmed to what a play touches
# plus its neighbours, so a query leaning on a missing column would fail here too).
MIXXX_SCHEMA = """
CREATE TABLE track_locations (id INTEGER PRIMARY KEY AUTOINCREMENT, location varchar(512) UNIQUE,
    filename varchar(512), directory varchar(512), filesize INTEGER, fs_deleted INTEGER,
    needs_verification INTEGER);
CREATE TABLE library (id INTEGER PRIMARY KEY AUTOINCREMENT, artist varchar(64), title varchar(64),
    album varchar(64), year varchar(16), genre varchar(64), tracknumber varchar(3),
    location integer REFERENCES track_locations(location), comment varchar(256), url varchar(256),
    duration float, bitrate integer,
    samplerate integer, cuepoint integer, bpm float, wavesummaryhex blob, channels integer,
    datetime_added DEFAULT CURRENT_TIMESTAMP, mixxx_deleted integer, played integer, header_parsed integer
    DEFAULT 0, filetype varchar(8) DEFAULT "?", replaygain float DEFAULT 0, timesplayed integer DEFAULT 0,
    rating integer DEFAULT 0, key varchar(8) DEFAULT "", key_id INTEGER DEFAULT 0, last_played_at DATETIME);
CREATE TABLE Playlists (id INTEGER PRIMARY KEY, name varchar(48), position INTEGER, hidden INTEGER DEFAULT 0
    NOT NULL, date_created datetime, date_modified datetime, locked INTEGER DEFAULT 0);
CREATE TABLE PlaylistTracks (id INTEGER PRIMARY KEY, playlist_id INTEGER REFERENCES Playlists(id),
    track_id INTEGER REFERENCES library(id), position INTEGER, pl_datetime_added);
"""


class Mixxx:
    """Writes mixxxdb.sqlite as Mixxx does: tracks in the library, a set-log playlist (hidden=2) per
    session, a row in it per play (pl_datetime_added in UTC)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript(MIXXX_SCHEMA)
        self.db.execute("INSERT INTO Playlists VALUES (1, 'Auto DJ', 0, 1, '', '', 0)")
        self.db.execute("INSERT INTO Playlists VALUES (2, 'Milonga prep', 1, 0, '', '', 0)")
        self.db.execute("INSERT INTO Playlists VALUES (3, '2026-12-01', 2, 2, '', '', 0)")

    def track(self, artist: str, title: str, bpm: float = 0, key: str = "") -> int:
        cur = self.db.execute(
            "INSERT INTO library (artist, title, bpm, key, mixxx_deleted) VALUES (?, ?, ?, ?, 0)",
            (artist, title, bpm, key),
        )
        return int(cur.lastrowid or 0)

    def add(self, playlist: int, track: int, at: float) -> None:
        added = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))
        self.db.execute(
            "INSERT INTO PlaylistTracks (playlist_id, track_id, position, pl_datetime_added) VALUES (?, ?, "
            "(SELECT count(*) + 1 FROM PlaylistTracks WHERE playlist_id = ?), ?)",
            (playlist, track, playlist, added),
        )

    def play(self, track: int, at: float) -> None:
        self.add(3, track, at)


@pytest.fixture
def mixxx(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    db = Mixxx(tmp_path / ".mixxx" / "mixxxdb.sqlite")
    yield db
    db.db.close()


def test_mixxx_reports_the_history_playlist_not_other_playlists(mixxx):
    before, santa = mixxx.track("Old", "Before"), mixxx.track("Gotan", "Santa María", 116.5, "Am")
    mixxx.play(before, START - 120)
    source = open_source("mixxx", None, started_at=START, catch_up=False)
    assert source.poll() == []
    mixxx.play(santa, START + 10)
    mixxx.add(1, before, START + 11)  # queued in Auto DJ
    mixxx.add(2, before, START + 12)  # dragged into a crate-like playlist
    [play] = source.poll()
    assert (play.artist, play.title, play.played_at, play.bpm, play.key) == (
        "Gotan",
        "Santa María",
        START + 10,
        116.5,
        "Am",
    )
    yumba = mixxx.track("Pugliese", "La Yumba")
    mixxx.play(yumba, START + 200)
    mixxx.play(santa, START + 400)
    assert tracks(source.poll()) == [("Pugliese", "La Yumba"), ("Gotan", "Santa María")]
    assert source.poll() == []


def test_mixxx_catch_up_reports_the_last_play_before_the_start(mixxx):
    mixxx.play(mixxx.track("A", "One"), START - 300)
    mixxx.play(mixxx.track("B", "Two"), START - 30)
    source = open_source("mixxx", None, started_at=START, catch_up=True)
    assert tracks(source.poll()) == [("B", "Two")]


def test_mixxx_is_read_without_blocking_mixxx_and_an_open_write_waits_for_its_commit(mixxx):
    source = open_source("mixxx", None, started_at=START, catch_up=False)
    source.poll()
    track = mixxx.track("A", "One")
    mixxx.db.execute("BEGIN IMMEDIATE")
    mixxx.play(track, START + 1)
    assert source.poll() == []  # not committed yet: not a play yet, and no error
    mixxx.db.execute("COMMIT")
    mixxx.db.execute("BEGIN EXCLUSIVE")  # Mixxx can always take its database back between polls
    mixxx.db.execute("COMMIT")
    assert tracks(source.poll()) == [("A", "One")]
    mixxx.db.execute("BEGIN EXCLUSIVE")
    mixxx.play(mixxx.track("B", "Two"), START + 2)
    assert source.poll() == []  # locked out for a moment: nothing now, nothing lost
    mixxx.db.execute("COMMIT")
    assert tracks(source.poll()) == [("B", "Two")]


def test_mixxx_file_that_is_not_a_library_is_a_source_error(tmp_path):
    path = tmp_path / "mixxxdb.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    with pytest.raises(SourceError) as err:
        open_source("mixxx", path, started_at=START, catch_up=False).poll()
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    path.write_bytes(b"not a database at all " * 50)
    with pytest.raises(SourceError):
        open_source("mixxx", path, started_at=START, catch_up=False).poll()
    path.unlink()
    sqlite3.connect(path).close()  # an empty database: no Mixxx tables
    with pytest.raises(SourceError, match="not a Mixxx library"):
        open_source("mixxx", path, started_at=START, catch_up=False).poll()


def test_mixxx_default_paths_cover_linux_macos_and_windows(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    places = [str(p.relative_to(tmp_path)) for p in default_paths("mixxx")]
    assert ".mixxx/mixxxdb.sqlite" in places
    assert any("Library/" in p for p in places) and any("AppData/Local/Mixxx" in p for p in places)


# --- every history file: any moment of writing ------------------------------------------------------


def vdj_bytes(played: list[tuple[str, str, float]]) -> bytes:
    return "".join("".join(vdj_entry(a, t, at)) for a, t, at in played).encode("utf-8")


def traktor_bytes(played: list[tuple[str, str, float]]) -> bytes:
    return traktor_nml([(a, t, at, 1) for a, t, at in played]).encode("utf-8")


def serato_bytes(played: list[tuple[str, str, float]]) -> bytes:
    return SESSION_HEAD + b"".join(
        oent(i + 1, a, t, start=at, played=True) for i, (a, t, at) in enumerate(played)
    )


HISTORIES = {
    "virtualdj": ("2026-12-01.m3u", vdj_bytes),
    "traktor": ("history_2026y12m01d_21h00m00s.nml", traktor_bytes),
    "serato": ("41.session", serato_bytes),
}


@pytest.mark.parametrize("name", HISTORIES)
@given(
    played=st.lists(st.sampled_from(["Di Sarli", "Pugliese", "Biagi"]), min_size=1, max_size=5),
    cut=st.floats(min_value=0, max_value=1),
)
def test_a_history_read_at_any_moment_of_its_writing_loses_and_doubles_nothing(name, played, cut):
    file_name, render = HISTORIES[name]
    set_list = [(artist, f"Track {i}", START + i) for i, artist in enumerate(played)]
    full = render(set_list)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / file_name
        path.write_bytes(b"")
        source = open_source(name, Path(folder), started_at=START, catch_up=False)
        got = source.poll()
        path.write_bytes(full[: int(len(full) * cut)])
        got += source.poll()
        path.write_bytes(full)
        got += source.poll()
    assert tracks(got) == [(artist, title) for artist, title, _ in set_list]
