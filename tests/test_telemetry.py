"""Reading a flight's telemetry (DJI .SRT in each layout, CSV flight logs) and asking it about frame times."""

from __future__ import annotations

import numpy as np
import pytest

from deidcli.areas.telemetry import (EDGE_TOLERANCE_S, Telemetry, describe, find_sidecar, parse_csv, parse_srt,
                                     read_telemetry)
from deidcli.errors import AreaInputError, TelemetryUnusableError

# Block numbers deliberately wrong (7, 3, 3, 1): samples are placed by the time lines, and the blocks are out of
# order in time too. The third block has no GPS fix yet (0, 0); the tags, CRLF and BOM are as DJI writes them.
MODERN = (
    "\ufeff7\r\n00:00:00,033 --> 00:00:00,066\r\n"
    '<font size="28">FrameCnt: 2, DiffTime: 33ms\r\n2023-03-25 13:37:01.156\r\n'
    "[iso: 100] [shutter: 1/1000.0] [fnum: 1.7] [ev: 0] [color_md: default] [focal_len: 24.00] [dzoom_ratio: 1.00], "
    "[latitude: 48.137254] [longitude: 11.576224] [rel_alt: 61.000 abs_alt: 581.000] "
    "[gb_yaw: 359.0 gb_pitch: -60.0 gb_roll: 0.0] [ct: 5500] </font>\r\n\r\n"
    "3\r\n00:00:00,000 --> 00:00:00,033\r\n"
    '<font size="28">FrameCnt: 1, DiffTime: 33ms\r\n2023-03-25 13:37:01.123\r\n'
    "[iso: 100] [focal_len: 24.00] [latitude: 48.137154] [longitude: 11.576124] [rel_alt: 60.000 abs_alt: 580.000] "
    "[gb_yaw: 358.0] [gb_pitch: -62.0] [gb_roll: 0.0] [drone_speedx: 1.2] [ct: 5500] </font>\r\n\r\n"
    "3\r\n00:00:00.066 --> 00:00:00.100\r\n"  # '.' for ',' in the times
    '<font size="28">FrameCnt: 3, DiffTime: 34ms\r\n'
    "[latitude: 0.000000] [longitude: 0.000000] [rel_alt: 0.000 abs_alt: 0.000] </font>\r\n\r\n"
    "1\r\n00:00:00,100 --> 00:00:00,133\r\n"
    '<font size="28">FrameCnt: 4, DiffTime: 33ms\r\n'
    "[focal_len: 166.00] [latitude: 48.137354] [longitude: 11.576324] [rel_alt: 62.000 abs_alt: 582.000] "
    "[gb_yaw: 1.0 gb_pitch: -58.0 gb_roll: 0.0] </font>\r\n"
)

# Mavic 2 Zoom / Air 2S style: spaces before the colon, "longtitude", altitude, focal length in tenths of a mm.
MAVIC2 = """1
00:00:00,000 --> 00:00:00,033
<font size="36">SrtCnt : 1, DiffTime : 33ms
2020-04-02 15:19:58,720,764
[iso : 120] [fnum : 280] [color_md : default] [focal_len : 240] [latitude : 51.2345] [longtitude : 4.5678] \
[altitude: 12.345000] </font>

2
00:00:00,033 --> 00:00:00,066
<font size="36">SrtCnt : 2, DiffTime : 33ms
[iso : 120] [focal_len : 480] [latitude : 51.2346] [longtitude : 4.5679] [altitude: 13.000000] </font>
"""

# Phantom 3/4 style, one block a second from 1 s: HOME is where the pilot stood, GPS(lon, lat, satellites).
LEGACY = """1
00:00:01,000 --> 00:00:02,000
HOME(149.0251,-20.2532) 2017.08.05 14:11:51
GPS(149.0251,-20.2533,16) BAROMETER:1.9
ISO:100 Shutter:60 EV:0 Fnum:F2.2

2
00:00:02,000 --> 00:00:03,000
HOME(149.0251,-20.2532) 2017.08.05 14:11:52
GPS(149.0252,-20.2534,16) BAROMETER:2.5M
ISO:100 Shutter:60 EV:0 Fnum:F2.2

3
00:00:03,000 --> 00:00:04,000
HOME(149.0251,-20.2532) 2017.08.05 14:11:53
GPS(149.0253,-20.2535,16) Hb:3.0 Hs:3.0
ISO:100 Shutter:60 EV:0 Fnum:F2.2
"""

# Matrice 300 (JuanIrache/DJI_SRT_Parser samples/matrice_300.srt and others): GPS(lat, lon, 0.0M), latitude first.
MATRICE_300 = """405
00:06:44,000 --> 00:06:45,000
2023.08.07 20:10:01
GPS(-41.3899,174.0177,0.0M) BAROMETER:97.7M
"""

# Mavic Mini / Phantom 4 Pro / RTK style: GPS (lon, lat, sats), H height; G.PRY is the gimbal's (pitch, roll, yaw).
MAVIC_PRO = """1
00:00:00,000 --> 00:00:01,000
F/2.8, SS 1000, ISO 100, EV 0, GPS (8.6763, 49.4120, 18), D 24.65m, H 20.50m, H.S 0.00m/s, V.S 0.00m/s

2
00:00:01,000 --> 00:00:02,000
F/5.6, SS 400, ISO 100, EV 0, GPS (8.6764, 49.4121, 16), HOME (8.6700, 49.4100, 7.60m), D 25.32m, H 21.00m, \
H.S 1.84m/s, V.S 0.00m/s, F.PRY (-8.9°, 2.9°, -75.0°), G.PRY (-27.3°, 0.0°, -76.0°)
"""


def srt_block(n: int, start_ms: int, end_ms: int, lat: float, lon: float) -> str:
    def clock(ms: int) -> str:
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return (f"{n}\n{clock(start_ms)} --> {clock(end_ms)}\n<font size=\"28\">FrameCnt: {n}\n"
            f"[focal_len: 24.00] [latitude: {lat:.6f}] [longitude: {lon:.6f}] [rel_alt: 50.000 abs_alt: 550.000] "
            "[gb_yaw: 10.0 gb_pitch: -45.0 gb_roll: 0.0] </font>\n\n")


def tele(times, yaw=None, end_s=None) -> Telemetry:
    times = np.asarray(times, float)
    n = len(times)
    nan = np.full(n, np.nan)
    return Telemetry(source="test", layout="csv", time_s=times, end_s=times[-1] if end_s is None else end_s,
                     lat=np.linspace(48.0, 48.001, n), lon=np.full(n, 11.5), rel_alt=np.full(n, 50.0), abs_alt=nan,
                     yaw=nan if yaw is None else np.asarray(yaw, float), pitch=np.full(n, -45.0),
                     roll=np.zeros(n), focal_len=nan, hfov=nan)


# ------------------------------------------------------------------------------------------------ SRT layouts
def test_modern_layout_times_from_time_lines_not_block_numbers():
    t = parse_srt(MODERN, "flight.SRT")
    assert t.layout == "dji-modern" and len(t) == 3  # the 0,0 no-fix block is skipped
    np.testing.assert_array_equal(t.time_s, [0.0, 0.033, 0.1])
    assert t.end_s == pytest.approx(0.133)
    np.testing.assert_array_equal(t.lat, [48.137154, 48.137254, 48.137354])
    np.testing.assert_array_equal(t.lon, [11.576124, 11.576224, 11.576324])
    np.testing.assert_array_equal(t.rel_alt, [60.0, 61.0, 62.0])
    np.testing.assert_array_equal(t.abs_alt, [580.0, 581.0, 582.0])
    np.testing.assert_array_equal(t.yaw, [358.0, 359.0, 1.0])  # also as separate [gb_yaw: ..] brackets
    np.testing.assert_array_equal(t.pitch, [-62.0, -60.0, -58.0])
    np.testing.assert_array_equal(t.focal_len, [24.0, 24.0, 166.0])  # "166.00" is mm (Mavic 3 Pro tele), not tenths
    assert not t.has("hfov") and t.has("roll")
    assert not t.time_s.flags.writeable


def test_mavic2_layout_longtitude_altitude_and_focal_in_tenths():
    t = parse_srt(MAVIC2, "m2.SRT")
    assert t.layout == "dji-mavic2"
    np.testing.assert_array_equal(t.time_s, [0.0, 0.033])
    np.testing.assert_array_equal(t.lat, [51.2345, 51.2346])
    np.testing.assert_array_equal(t.lon, [4.5678, 4.5679])
    np.testing.assert_array_equal(t.rel_alt, [12.345, 13.0])
    np.testing.assert_array_equal(t.focal_len, [24.0, 48.0])  # 240 and 480 are tenths of a mm
    assert not t.has("abs_alt") and not t.has("yaw")


def test_legacy_layout_is_lon_first_and_ignores_home():
    t = parse_srt(LEGACY, "p4.SRT")
    assert t.layout == "dji-legacy"
    np.testing.assert_array_equal(t.time_s, [1.0, 2.0, 3.0])
    assert t.end_s == 4.0
    np.testing.assert_array_equal(t.lat, [-20.2533, -20.2534, -20.2535])  # not HOME's -20.2532
    np.testing.assert_array_equal(t.lon, [149.0251, 149.0252, 149.0253])
    np.testing.assert_array_equal(t.rel_alt, [1.9, 2.5, 3.0])  # BAROMETER, BAROMETER with M, old firmware's Hb
    assert describe(t)["orientation"] == []


def test_matrice_300_gps_with_unit_is_latitude_first():
    t = parse_srt(MATRICE_300, "m300.SRT")
    assert t.layout == "dji-legacy"
    assert (t.lat[0], t.lon[0], t.rel_alt[0], t.time_s[0]) == (-41.3899, 174.0177, 97.7, 404.0)


def test_mavic_pro_layout_height_and_gimbal_angles():
    t = parse_srt(MAVIC_PRO, "mini.SRT")
    assert t.layout == "dji-mavic-pro"
    np.testing.assert_array_equal(t.lat, [49.4120, 49.4121])
    np.testing.assert_array_equal(t.lon, [8.6763, 8.6764])
    np.testing.assert_array_equal(t.rel_alt, [20.5, 21.0])
    assert np.isnan(t.yaw[0]) and (t.pitch[1], t.roll[1], t.yaw[1]) == (-27.3, 0.0, -76.0)  # G.PRY, not F.PRY


def test_mixed_file_is_named_after_most_blocks():
    t = parse_srt(MAVIC_PRO + "\n" + LEGACY.replace("00:00:0", "00:00:1"), "mixed.SRT")
    assert len(t) == 5 and t.layout == "dji-legacy"


def test_read_telemetry_tells_srt_from_csv(tmp_path):
    (tmp_path / "a.SRT").write_bytes(MODERN.encode("utf-8"))
    (tmp_path / "log.txt").write_text("time_s,lat,lon,rel_alt_m,yaw_deg,pitch_deg,roll_deg\n0,48.1,11.5,50,10,-45,0\n")
    assert read_telemetry(tmp_path / "a.SRT").layout == "dji-modern"
    t = read_telemetry(tmp_path / "log.txt")
    assert t.layout == "csv" and t.source == str(tmp_path / "log.txt")


# ------------------------------------------------------------------------------------------------ coverage
def test_yaw_interpolates_across_north():
    t = tele([0.0, 1.0], yaw=[359.0, 1.0])
    got = t.at(np.array([0.0, 0.25, 0.5, 1.0]))
    np.testing.assert_allclose(got["yaw"], [-1.0, -0.5, 0.0, 1.0], atol=1e-9)  # never through 180
    np.testing.assert_allclose(got["lat"], [48.0, 48.00025, 48.0005, 48.001])


def test_at_keeps_missing_fields_nan_and_refuses_outside():
    t = tele([0.0, 1.0, 2.0], yaw=[10.0, np.nan, 30.0], end_s=3.0)
    got = t.at(np.array([0.0, 0.5, 1.5, 2.0, 2.9, 3.5, -0.5]))
    np.testing.assert_array_equal(got["yaw"][:5], [10.0, np.nan, np.nan, 30.0, 30.0])  # last sample holds to end_s
    assert np.isnan(got["lat"][5:]).all()


def test_uncovered_when_telemetry_is_cut_midway():
    fps = 30.0
    text = "".join(srt_block(k + 1, round(k * 1000 / fps), round((k + 1) * 1000 / fps), 48.1 + k * 1e-5, 11.5)
                   for k in range(45))  # 90 frames of video, telemetry for the first 45
    t = parse_srt(text, "cut.SRT")
    frames = np.arange(90) / fps
    gone = t.uncovered(frames)
    assert not gone[:45].any() and gone[45:].all()
    assert describe(t)["orientation"] == ["yaw", "pitch", "roll"]


def test_uncovered_in_a_gap_over_a_second():
    t = tele([0.0, 0.5, 2.0, 2.5], end_s=3.0)
    got = t.uncovered(np.array([-0.0005, -0.01, 0.5, 0.51, 1.9, 2.0, 2.7, 2.99, 3.0, 3.0 + EDGE_TOLERANCE_S * 2]))
    # 3.0: end_s is the last block's end, which is where the next frame, the first without telemetry, begins
    np.testing.assert_array_equal(got, [False, True, False, True, True, False, False, False, True, True])


def test_one_block_a_second_is_covered():
    t = parse_srt(LEGACY, "p4.SRT")  # samples at 1, 2, 3 s, valid to 4 s
    got = t.uncovered(np.array([0.5, 0.9995, 1.0, 1.5, 2.999, 3.5, 3.99, 4.0]))
    np.testing.assert_array_equal(got, [True, False, False, False, False, False, False, True])


# ------------------------------------------------------------------------------------------------ CSV
def test_csv_with_hfov_any_order_and_case():
    text = (" LAT , Lon, time_s ,rel_alt_m,yaw_deg,pitch_deg,roll_deg, hfov_deg\n"
            " 48.1 , 11.5, 0.0 ,50,359,-45,0, 73.7\n"
            "\n"
            "48.2,11.6,0.5,51,1,-40,1,\n")
    t = parse_csv(text, "log.csv")
    assert t.layout == "csv" and t.end_s == 0.5
    np.testing.assert_array_equal(t.time_s, [0.0, 0.5])
    np.testing.assert_array_equal(t.lat, [48.1, 48.2])
    np.testing.assert_array_equal(t.yaw, [359.0, 1.0])
    np.testing.assert_array_equal(t.hfov, [73.7, np.nan])
    assert t.at(np.array([0.25]))["yaw"][0] == pytest.approx(0.0)
    np.testing.assert_array_equal(t.uncovered(np.array([0.0, 0.5, 0.5005, 0.51])), [False, False, False, True])


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name, content, where", [
    ("flight.SRT", "1\n00:00:00,000 --> 00:00:00,033\n[latitude: abc] [longitude: 11.5] [rel_alt: 1 abs_alt: 2]\n",
     "line 3: latitude 'abc' is not a number"),
    ("flight.SRT", "1\n00:00:00,000 --> 00:00:01,000\nGPS(149.0251,x,16) BAROMETER:1.9\n", "line 3: GPS value 'x'"),
    ("flight.SRT", "1\n00:00:00,000 --> 00:0:01\n[latitude: 1]\n", "line 2: time line"),
    ("flight.SRT", "1\n00:00:00,000 --> 00:00:01,000\n[latitude: 48.1] [longitude: 11.5]\n2\n[latitude: 48.2] "
     "[longitude: 11.6]\n", "line 5: a second position"),
    ("flight.SRT", "1\n00:00:00,000 --> 00:00:01,000\nGPS(116.39,39.9,16) BAROMETER:1\n"
     "2\n00:00:01,000 --> 00:00:02,000\nGPS(39.9,116.39,16) BAROMETER:1\n", "line 6: GPS(39.9,116.39,16)"),
    ("log.csv", "", "line 1: empty"),
    ("log.csv", "\n\n", "line 1: empty"),
    ("log.csv", "time_s,lat,lon,rel_alt_m,yaw_deg,pitch_deg\n0,48,11,50,1,2\n", "line 1: missing column(s) roll_deg"),
    ("log.csv", "time_s,lat,lon,rel_alt_m,yaw_deg,pitch_deg,roll_deg\n0,48,11,50,1,2,3\n0.5,48,eleven,50,1,2,3\n",
     "line 3: lon 'eleven' is not a number"),
    ("log.csv", "time_s,lat,lon,rel_alt_m,yaw_deg,pitch_deg,roll_deg\n0,48,11,50,1,2,3\n0,48,11,50,1,2,3\n",
     "line 3: time_s 0 does not increase"),
    ("log.csv", "time_s,lat,lon,rel_alt_m,yaw_deg,pitch_deg,roll_deg\n", "line 1: a header but no samples"),
    ("blob.bin", bytes(range(256)) * 4, "line 1: not a text file"),
    ("notes.txt", b"\xff\xfe\xfd garbage\nmore", "line 1: neither an SRT"),
])
def test_bad_files_name_the_file_and_line(tmp_path, name, content, where):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(AreaInputError) as err:
        read_telemetry(path)
    assert err.value.message.startswith(f"{path} ") and where in err.value.message, err.value.message
    assert "\n" not in err.value.message


def test_no_position_in_any_block_is_unusable():
    with pytest.raises(TelemetryUnusableError, match="none of its 2 subtitle blocks"):
        parse_srt("1\n00:00:00,000 --> 00:00:00,040\n[iso : 100] [shutter : 1/240.0]\n\n"
                  "2\n00:00:00,040 --> 00:00:00,080\n[latitude: 0.0] [longitude: 0.0]\n", "air.SRT")


def test_positions_in_radians_are_refused():
    text = "".join(srt_block(k + 1, k * 33, (k + 1) * 33, 0.722886, 0.208439) for k in range(3))
    with pytest.raises(TelemetryUnusableError, match="radians"):
        parse_srt(text, "air2.SRT")


# ------------------------------------------------------------------------------------------------ sidecar
def test_find_sidecar(tmp_path):
    video = tmp_path / "DJI_0001.MP4"
    video.write_bytes(b"")
    (tmp_path / "DJI_0002.SRT").write_text("x")
    assert find_sidecar(video) is None
    (tmp_path / "DJI_0001.srt").write_text("x")
    assert find_sidecar(video) == tmp_path / "DJI_0001.srt"
    assert find_sidecar(tmp_path / "gone" / "DJI_0001.MP4") is None
