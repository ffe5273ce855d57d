from cophub.cli import main

main()
