"""Deployment generation: the workspace model and one renderer per target.

``model.build_model`` reads the workspace once; ``compose.render_compose``
and ``kubernetes.render_kubernetes`` format it; ``output`` writes the files.
"""
