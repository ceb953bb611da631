from smsgw.cli.main import main

main()
