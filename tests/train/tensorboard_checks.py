"""The TensorBoard checks every training engine's run passes, shared by the engines' test files."""

from tensorboard.plugins.hparams import metadata as hparams_metadata

from tests.helpers import summary_events


def assert_engine_board(logs, engine, step_op, epochs):
    """``logs`` holds the train step's op graph (with ``step_op``), the HParams session ``{engine, epochs}`` and its end.

    The run was given ``hparams={"engine": engine, "epochs": epochs}``; the
    classifier's own summaries (its augmented training batch) are absent.
    """
    train = summary_events(logs / "train")
    assert step_op in {node.op for node in train.Graph().node}, f"the {engine} train step's graph"
    session = summary_events(logs)
    start = hparams_metadata.parse_session_start_info_plugin_data(
        session.SummaryMetadata(hparams_metadata.SESSION_START_INFO_TAG).plugin_data.content)
    assert start.hparams["engine"].string_value == engine and start.hparams["epochs"].number_value == epochs
    assert hparams_metadata.SESSION_END_INFO_TAG in session.Tags()["tensors"], "the session's end"
    assert "augmented_training_batch" not in train.Tags()["tensors"], "classifier-only summaries stay classifiers'"
