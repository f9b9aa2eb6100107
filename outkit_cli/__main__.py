from outkit_cli.cli import main

main()
