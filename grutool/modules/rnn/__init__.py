"""grutool's recurrent kernels: the packed-row runtime (`runtime`, `gemm`) and one file per cell
(`gru`, `lstm`, `rnn`); where `auto` uses them is `grutool.kernels`."""
