"""The list of tools the agent gets, each built with the session's ToolContext."""

from __future__ import annotations

from smolagents import Tool

from tools.citations import CitationGraphTool
from tools.code_search import SearchCodeExamplesTool
from tools.context import ToolContext
from tools.dataset_quality import CheckDatasetQualityTool
from tools.datasets import InspectDatasetTool, SearchDatasetsTool
from tools.diagnosis import DiagnoseRunTool
from tools.evaluation import CollectEvaluationTool, RunEvaluationTool
from tools.jobs import CancelJobTool, JobLogsTool, JobStatusTool, SubmitJobTool, WaitForJobTool
from tools.library_docs import LookupApiTool, SearchDocsTool
from tools.paper_reader import ReadPaperTool
from tools.papers import SearchPapersTool
from tools.preflight import PreflightTool
from tools.recipe import ExtractRecipeTool
from tools.reformat import ReformatDatasetTool
from tools.scripts import WriteTrainingScriptTool
from tools.smoke_run import SmokeRunTool
from tools.synthetic import GenerateSyntheticDataTool

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


def build_tools(ctx: ToolContext) -> list[Tool]:
    return [cls(ctx) for cls in TOOL_CLASSES]
