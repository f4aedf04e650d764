from deidcli.cli import main

main()
