"""Pure models and rules: imported by workflows (inside the sandbox) and activities alike."""
