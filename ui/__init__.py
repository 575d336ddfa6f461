"""The Gradio app's parts: identity, chat rendering, the live chat, jobs, experiments, settings."""
