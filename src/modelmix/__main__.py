from modelmix.cli import main

main()
