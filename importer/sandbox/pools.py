"""Value pools for the sandbox's data generator: names in several scripts, titles, hardware.

Each name comes with the ASCII form used to build user principal names (the real directory
keeps UPNs ASCII; display names keep accents, Arabic, Hebrew and CJK). Some ASCII forms keep an
apostrophe on purpose (``o'brien``): UPNs and mail addresses may contain one.
"""

from __future__ import annotations

__all__ = [
    "ARABIC_GIVEN",
    "ARABIC_SURNAMES",
    "CJK_GIVEN",
    "CJK_SURNAMES",
    "COMPANIES",
    "DEPARTMENTS",
    "GUEST_DOMAINS",
    "HEBREW_GIVEN",
    "HEBREW_SURNAMES",
    "JOB_TITLES",
    "LANGUAGES",
    "LATIN_GIVEN",
    "LATIN_SURNAMES",
    "NICKNAMES",
    "OFFICES",
    "PLATFORMS",
    "SERVICE_ACCOUNTS",
    "USAGE_LOCATIONS",
    "Platform",
]

Name = tuple[str, str]  # (as displayed, ASCII for the UPN)

LATIN_GIVEN: tuple[Name, ...] = (
    ("James", "james"), ("Mary", "mary"), ("John", "john"), ("Patricia", "patricia"),
    ("Robert", "robert"), ("Jennifer", "jennifer"), ("Michael", "michael"), ("Linda", "linda"),
    ("David", "david"), ("Elizabeth", "elizabeth"), ("William", "william"), ("Susan", "susan"),
    ("Anna", "anna"), ("Ann", "ann"), ("Annabel", "annabel"), ("Jo", "jo"), ("Joanne", "joanne"),
    ("José", "jose"), ("María", "maria"), ("Zoë", "zoe"), ("Łukasz", "lukasz"), ("Søren", "soren"),
    ("Björn", "bjorn"), ("François", "francois"), ("Chloé", "chloe"), ("Jürgen", "juergen"),
    ("Małgorzata", "malgorzata"), ("Siobhán", "siobhan"), ("Thảo", "thao"), ("Mohammed", "mohammed"),
    ("Priya", "priya"), ("Aroha", "aroha"), ("Ngozi", "ngozi"), ("Olúwaseun", "oluwaseun"),
    ("Yuki", "yuki"), ("Ana-Lucía", "ana-lucia"), ("Jean-Luc", "jean-luc"), ("Émile", "emile"),
    ("Ingrid", "ingrid"), ("Kwame", "kwame"), ("Mei", "mei"), ("Aleksandr", "aleksandr"),
)  # fmt: skip
LATIN_SURNAMES: tuple[Name, ...] = (
    ("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
    ("Jones", "jones"), ("Garcia", "garcia"), ("Miller", "miller"), ("Davis", "davis"),
    ("O'Brien", "o'brien"), ("D'Angelo", "dangelo"), ("O'Neill", "oneill"), ("Müller", "mueller"),
    ("Ólafsdóttir", "olafsdottir"), ("Nowak", "nowak"), ("Núñez", "nunez"), ("Kowalczyk", "kowalczyk"),
    ("van der Berg", "vanderberg"), ("Smith-Jones", "smith-jones"), ("Nguyễn", "nguyen"),
    ("Dubois", "dubois"), ("Rossi", "rossi"), ("Tanaka", "tanaka"), ("Patel", "patel"),
    ("Okafor", "okafor"), ("Kaur", "kaur"), ("Andersson", "andersson"), ("Białek", "bialek"),
    ("Øster", "oster"), ("Fernández", "fernandez"), ("Schäfer", "schaefer"), ("Lefèvre", "lefevre"),
    ("McAllister", "mcallister"), ("Ivanova", "ivanova"), ("Mensah", "mensah"), ("Silva", "silva"),
)  # fmt: skip
ARABIC_GIVEN: tuple[Name, ...] = (
    ("محمد", "mohammad"),
    ("فاطمة", "fatima"),
    ("أحمد", "ahmad"),
    ("ليلى", "layla"),
    ("يوسف", "youssef"),
)
ARABIC_SURNAMES: tuple[Name, ...] = (
    ("العلي", "alali"),
    ("الحسن", "alhassan"),
    ("منصور", "mansour"),
    ("خليل", "khalil"),
)
HEBREW_GIVEN: tuple[Name, ...] = (("דוד", "david"), ("שרה", "sarah"), ("נועה", "noa"), ("יוסי", "yossi"))
HEBREW_SURNAMES: tuple[Name, ...] = (
    ("כהן", "cohen"),
    ("לוי", "levi"),
    ("מזרחי", "mizrahi"),
    ("פרץ", "peretz"),
)
CJK_GIVEN: tuple[Name, ...] = (("さくら", "sakura"), ("伟", "wei"), ("翔太", "shota"), ("美玲", "meiling"))
CJK_SURNAMES: tuple[Name, ...] = (("佐藤", "sato"), ("李", "li"), ("王", "wang"), ("鈴木", "suzuki"))
NICKNAMES = ("Bobby", "Kate", "Ace", "Jr.")
SERVICE_ACCOUNTS = (
    "Conf Room Adams", "Conf Room Baker", "svc-backup", "Reception Desk", "Shared Mailbox – Finance",
    "Scanner 3rd Floor",
)  # fmt: skip
GUEST_DOMAINS = ("fabrikam.com", "gmail.com", "outlook.com", "adatum.com", "northwindtraders.com")
JOB_TITLES = (
    "Software Engineer", "Senior Software Engineer", "Product Manager", "Sales Representative",
    "Account Executive", "HR Business Partner", "IT Support Specialist", "Data Analyst",
    "Marketing Manager", "Chief Executive Officer", "Recruiter", "Office Manager", "Finance Controller",
    "Ingénieur logiciel", "Vertriebsleiter", "مدير المبيعات", "Designer & Researcher", "VP, Engineering",
)  # fmt: skip
DEPARTMENTS = (
    "Engineering", "Sales", "Marketing", "Finance", "Human Resources", "IT", "Legal", "Operations",
    "Customer Success", "Research & Development", "Produktentwicklung",
)  # fmt: skip
OFFICES = (
    "Redmond", "London", "Berlin", "Zürich", "São Paulo", "Tel Aviv", "Dubai", "Tokyo", "Remote",
    "Building 40/1234",
)  # fmt: skip
COMPANIES = ("Contoso Ltd.", "Contoso Ltd.", "Contoso Ltd.", "Contoso GmbH", "Fabrikam, Inc.")
LANGUAGES = ("en-US", "en-US", "en-GB", "de-DE", "fr-FR", "he-IL", "ar-AE", "ja-JP", "pt-BR")
USAGE_LOCATIONS = ("US", "US", "GB", "DE", "FR", "IL", "AE", "JP", "BR", "CH")


Platform = tuple[str, tuple[str, ...], tuple[tuple[str, str], ...], float]
# (operatingSystem, versions, (Manufacturer, Model) pairs, weight)
PLATFORMS: tuple[Platform, ...] = (
    (
        "Windows",
        ("10.0.19045.4529", "10.0.22631.3880", "10.0.22631.4317", "10.0.26100.1742"),
        (
            ("Dell Inc.", "Latitude 7440"),
            ("LENOVO", "21HD003MUS"),
            ("HP", "HP EliteBook 840 G10"),
            ("Microsoft Corporation", "Surface Laptop 5"),
        ),
        0.50,
    ),
    ("macOS", ("13.6.7", "14.5.0", "14.6.1", "15.0.1"),
     (("Apple", "MacBookPro18,3"), ("Apple", "Mac14,2")), 0.15),
    ("iOS", ("16.7.8", "17.5.1", "17.6", "18.0.1"),
     (("Apple", "iPhone 15"), ("Apple", "iPhone 13 mini")), 0.13),
    ("IPad", ("17.5.1", "18.0"), (("Apple", "iPad Air (5th generation)"),), 0.02),
    ("Android", ("13", "14", "14.0", "15"),
     (("samsung", "SM-S911B"), ("Google", "Pixel 7"), ("motorola", "moto g54 5G")), 0.15),
    ("Linux", ("22.04", "24.04", "Fedora 40"), (("", ""),), 0.05),
)  # fmt: skip
