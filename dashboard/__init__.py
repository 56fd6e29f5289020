"""The Streamlit dashboard over ``results/<run>/``: reads result files, never recomputes metrics."""
