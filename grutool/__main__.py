from grutool.cli.app import main

main()
