"""bench_train / bench_infer rows: the FMA probe after each row, and the second measurement
of a multi-thread row that ran while the machine gave fewer cores than asked."""

from pyvision_engine.benchmarks import train


def _fake_probes(monkeypatch, values):
    it = iter(values)
    monkeypatch.setattr(train, "row_probe", lambda threads: next(it))


def _counting():
    runs = []

    def measure():
        runs.append(len(runs) + 1)
        return runs[-1]
    return measure, runs


def test_one_thread_row_is_measured_once(monkeypatch):
    _fake_probes(monkeypatch, [230.0])
    measure, runs = _counting()
    assert train.measured_row(measure, 1) == (1, 230.0)
    assert runs == [1]


def test_full_cores_row_is_measured_once(monkeypatch):
    # 2-thread probe 450 >= 0.75 * 2 * 230: the machine gave both cores
    _fake_probes(monkeypatch, [450.0, 230.0])
    measure, runs = _counting()
    assert train.measured_row(measure, 2) == (1, 450.0)
    assert runs == [1]


def test_starved_row_is_measured_again_and_the_better_probe_kept(monkeypatch):
    _fake_probes(monkeypatch, [235.0, 230.0, 440.0])
    measure, runs = _counting()
    assert train.measured_row(measure, 2) == (2, 440.0)
    assert runs == [1, 2]


def test_second_run_kept_only_if_its_probe_is_higher(monkeypatch):
    _fake_probes(monkeypatch, [300.0, 230.0, 240.0])
    measure, runs = _counting()
    assert train.measured_row(measure, 2) == (1, 300.0)
    assert runs == [1, 2]


def test_format_table_shows_the_probe_and_the_note():
    rows = [{"model": "lenet5", "input": "1x28x28", "batch": 64, "optimizer": "Adam",
             "threads": 2, "pve": 2000.0, "torch": 1000.0, "probe": 451.2}]
    text = train.format_table(rows)
    assert "| FMA GFLOP/s |" in text.splitlines()[0]
    assert text.splitlines()[2].endswith("| 2.00x | 451 |")
    assert train.PROBE_NOTE in text
