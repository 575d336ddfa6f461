"""The list of tools the agent gets, each built with the session's ToolContext."""

from __future__ import annotations

from smolagents import Tool

from tools.context import ToolContext
from tools.data.datasets import InspectDatasetTool, SearchDatasetsTool
from tools.data.quality import CheckDatasetQualityTool
from tools.data.reformat import ReformatDatasetTool
from tools.data.synthetic import GenerateSyntheticDataTool
from tools.evaluation.evaluate import CollectEvaluationTool, RunEvaluationTool
from tools.evaluation.external import RunBenchmarkEvalTool
from tools.research.citations import CitationGraphTool
from tools.research.code_search import SearchCodeExamplesTool
from tools.research.library_docs import LookupApiTool, SearchDocsTool
from tools.research.paper_reader import ReadPaperTool
from tools.research.papers import SearchPapersTool
from tools.research.recipe import ExtractRecipeTool
from tools.timer import TimeLeftTool
from tools.training.diagnosis import DiagnoseRunTool
from tools.training.final_model import SaveFinalModelTool
from tools.training.jobs import CancelJobTool, JobLogsTool, JobStatusTool, SubmitJobTool, WaitForJobTool
from tools.training.preflight import PreflightTool
from tools.training.scripts import WriteTrainingScriptTool
from tools.training.smoke_run import SmokeRunTool

TOOL_CLASSES = (
    # research
    SearchPapersTool, ReadPaperTool, ExtractRecipeTool, CitationGraphTool,
    SearchCodeExamplesTool, LookupApiTool, SearchDocsTool,
    # data
    SearchDatasetsTool, InspectDatasetTool, CheckDatasetQualityTool, ReformatDatasetTool,
    GenerateSyntheticDataTool,
    # training and jobs
    WriteTrainingScriptTool, SmokeRunTool, PreflightTool, SubmitJobTool, JobStatusTool, JobLogsTool, CancelJobTool,
    WaitForJobTool, DiagnoseRunTool,
    # evaluation
    RunEvaluationTool, CollectEvaluationTool,
)


# A benchmark run's own tools (`ctx.rules`: tools/run_rules.py); the eval command's only with one.
BENCHMARK_TOOL_CLASSES = (TimeLeftTool, SaveFinalModelTool)


def build_tools(ctx: ToolContext) -> list[Tool]:
    tools = [cls(ctx) for cls in TOOL_CLASSES]
    if ctx.rules is not None:
        tools += [cls(ctx) for cls in BENCHMARK_TOOL_CLASSES]
        tools += [RunBenchmarkEvalTool(ctx)] if ctx.rules.eval_command else []
    return tools
