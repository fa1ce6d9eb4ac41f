from deltastream.cli import main

main()
