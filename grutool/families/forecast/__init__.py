"""The forecast family (time series -> the next rows): its task, model, windows, metrics, export and render."""
